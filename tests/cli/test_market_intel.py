"""stagectl market-intel: the table, --json, mandatory symbols and --now."""

from __future__ import annotations

import shutil
from pathlib import Path

from stagectl.data import SAMPLE_DIR
from tests.conftest import Run


def test_json_has_every_symbol_and_a_fresh_aggregate_weighing_1_15(run: Run) -> None:
    result = run(["market-intel", "--json"])
    assert result.exit_code == 0, result.stderr
    document = result.json()
    # the bundled SOLUSDT file ends first (last bar 2026-05-16T10:00Z): "now" is its end
    assert document["as_of"] == "2026-05-16T11:00:00Z"
    assert document["mandatory_symbols"] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    rows = {row["symbol"]: row for row in document["rows"]}
    assert list(rows) == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "AGGREGATE"]
    assert rows["SOLUSDT"]["latency_ms"] == 0.0
    assert rows["AGGREGATE"]["fresh"] is True
    assert rows["AGGREGATE"]["weight"] == 1.15
    assert rows["AGGREGATE"]["spread_bps"] == max(r["spread_bps"] for r in document["rows"])


def test_table_lists_the_aggregate_row(run: Run) -> None:
    result = run(["market-intel", "--now", "2026-05-01T12:00Z"])
    assert result.exit_code == 0
    assert "AGGREGATE" in result.stdout
    assert "SOLUSDT" in result.stdout


def test_now_after_the_data_makes_latency_and_staleness_visible(run: Run) -> None:
    document = run(["market-intel", "--json", "--now", "2026-05-16T14:00Z"]).json()
    sol = next(row for row in document["rows"] if row["symbol"] == "SOLUSDT")
    assert sol["latency_ms"] == 3 * 3_600_000.0
    assert sol["fresh"] is False
    assert document["rows"][-1]["weight"] == 0.0


def test_missing_mandatory_symbol_is_an_input_error_naming_it(run: Run, home: Path) -> None:
    data = home / "data"
    data.mkdir()
    for symbol in ("BTCUSDT", "SOLUSDT"):
        name = f"binance_perp_{symbol}_1h_ohlcv.csv.gz"
        shutil.copy(SAMPLE_DIR / name, data / name)
    result = run(["market-intel", "--data", str(data)])
    assert result.exit_code == 2
    assert "ETHUSDT" in result.stderr
    assert "mandatory" in result.stderr


def test_bad_now_is_a_usage_error(run: Run) -> None:
    result = run(["market-intel", "--now", "yesterday"])
    assert result.exit_code == 2
    assert "--now" in result.stderr


def test_now_before_the_data_is_an_input_error(run: Run) -> None:
    result = run(["market-intel", "--now", "2024-01-01T02:00Z"])
    assert result.exit_code == 2
    assert "not enough data" in result.stderr
