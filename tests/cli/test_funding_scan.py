"""stagectl funding-scan: the bundled data, --data without spot candles, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from stagectl.data.bundled import SAMPLE_DIR
from tests.conftest import Run


def test_scans_every_bundled_symbol_with_its_basis(run: Run) -> None:
    result = run(["funding-scan", "--json"])
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert [s["symbol"] for s in doc["symbols"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    assert doc["without_basis"] == []
    for scan in doc["symbols"]:
        assert set(scan["carry_annualised"]) == {"24h", "7d", "30d"}
        assert scan["basis"] is not None
        assert (scan["turn"] is None) == (scan["symbol"] not in doc["turned"])


def test_human_table_names_the_flag(run: Run) -> None:
    result = run(["funding-scan"])
    assert result.exit_code == 0, result.stderr
    assert "carry 7d" in result.stdout and "ETHUSDT" in result.stdout


def test_without_spot_candles_the_basis_is_left_out(run: Run, tmp_path: Path) -> None:
    for name in ("binance_perp_ETHUSDT_8h_funding.csv.gz", "binance_perp_ETHUSDT_1h_ohlcv.csv.gz"):
        shutil.copy(SAMPLE_DIR / name, tmp_path / name)
    result = run(["funding-scan", "--data", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["without_basis"] == ["ETHUSDT"]
    assert doc["symbols"][0]["basis"] is None


def test_a_time_before_the_data_is_exit_2(run: Run) -> None:
    result = run(["funding-scan", "--now", "2001-01-01", "-s", "ETHUSDT"])
    assert result.exit_code == 2
    assert "--now" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_symbol_is_exit_2(run: Run) -> None:
    result = run(["funding-scan", "-s", "DOGEUSDT"])
    assert result.exit_code == 2
    assert "DOGEUSDT" in result.stderr


def test_out_and_metrics_file_leave_the_report_and_the_textfile_of_the_hourly_job(
    run: Run, home: Path
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    out, prom = home / "scan.json", home / "scan.prom"
    result = run(["funding-scan", "--out", out, "--unsigned", "--metrics-file", prom, "--json"])
    assert result.exit_code == 0, result.stderr
    doc = result.json()  # --json still prints the scan itself
    report = json.loads(out.read_text())
    assert report["kind"] == "funding-scan" and report["body"] == doc
    gauges = {
        s.name: s.value for f in text_string_to_metric_families(prom.read_text()) for s in f.samples
    }
    assert gauges["stagectl_command_exit_code"] == 0
    assert gauges["stagectl_funding_carry_turns"] == len(doc["turned"])


def test_a_failed_scan_still_writes_its_exit_code(run: Run, home: Path) -> None:
    prom = home / "scan.prom"
    result = run(["funding-scan", "-s", "DOGEUSDT", "--metrics-file", prom])
    assert result.exit_code == 2
    assert 'stagectl_command_exit_code{command="funding-scan"} 2.0' in prom.read_text()
