"""stagectl funding-scan: the bundled data, --data without spot candles, bad input."""

from __future__ import annotations

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
