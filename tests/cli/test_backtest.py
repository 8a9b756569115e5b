"""`stagectl backtest`: exit codes 0 and 2, --json, --out, --export."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.conftest import REPO_ROOT, Run

WINDOW = ["--start", "2025-10-01", "--end", "2025-12-31"]


def test_a_backtest_exits_0_and_prints_the_metrics_and_annualisation(run: Run) -> None:
    result = run(["backtest", *WINDOW])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "alt_ensemble backtest: ETHUSDT 54 % + SOLUSDT 46 %"
    assert lines[1] == "2025-10-01T00:00:00Z .. 2025-12-31T23:00:00Z (2208 1h bars)"
    assert "annualisation: sqrt(8760) for 1h bars" in lines
    metric_names = {line.split("  ")[0] for line in lines}
    assert {"Sharpe net", "Sharpe gross", "Sortino", "Calmar", "profit factor"} <= metric_names
    assert "(packaged default)" in result.stderr


def test_json_prints_exactly_one_backtest_envelope(run: Run) -> None:
    result = run(["backtest", *WINDOW, "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["kind"] == "backtest"
    assert {"strategy", "data", "metrics"} <= set(document["body"])
    metrics = document["body"]["metrics"]
    assert metrics["periods_per_year"] == 8760
    assert metrics["capacity"]["method"].startswith("equity E at which")
    assert set(metrics["stability"]["by_sleeve"]) == {"ETHUSDT", "SOLUSDT"}
    assert document["inputs"][0]["path"].endswith("futures_alt_ensemble.yaml")


def test_symbol_runs_one_sleeve_at_weight_1(run: Run) -> None:
    result = run(["backtest", *WINDOW, "--symbol", "ETHUSDT", "--json"])
    assert result.exit_code == 0, result.stderr
    sleeves = result.json()["body"]["strategy"]["sleeves"]
    assert [(s["symbol"], s["weight"]) for s in sleeves] == [("ETHUSDT", 1.0)]


def test_out_writes_a_signed_report_that_verifies(run: Run, home: Path, hmac_key: str) -> None:
    out = home / "reports" / "backtest.json"
    result = run(["backtest", *WINDOW, "--out", out])
    assert result.exit_code == 0, result.stderr
    assert json.loads(out.read_text())["signature"]["alg"] == "HMAC-SHA256"
    assert run(["report", "verify", out]).exit_code == 0


def test_out_without_a_key_exits_2_unless_unsigned(run: Run, home: Path) -> None:
    out = home / "backtest.json"
    assert run(["backtest", *WINDOW, "--out", out]).exit_code == 2
    assert not out.exists()
    assert run(["backtest", *WINDOW, "--out", out, "--unsigned"]).exit_code == 0
    assert json.loads(out.read_text())["signature"] is None


def test_export_writes_equity_and_trades_csv_into_a_new_directory(run: Run, home: Path) -> None:
    target = home / "artifacts" / "bt" / "q4"
    result = run(["backtest", *WINDOW, "--export", target])
    assert result.exit_code == 0, result.stderr
    equity = pd.read_csv(target / "equity.csv")
    trades = pd.read_csv(target / "trades.csv")
    assert list(equity.columns) == ["timestamp", "equity", "ETHUSDT_equity", "SOLUSDT_equity"]
    assert len(equity) == 2208
    assert {"symbol", "side", "entry_time", "exit_time", "pnl"} <= set(trades.columns)
    assert sorted(p.name for p in target.iterdir()) == ["equity.csv", "trades.csv"]


def test_a_missing_config_file_exits_2(run: Run, home: Path) -> None:
    result = run(["backtest", "-c", home / "nope.yaml"])
    assert result.exit_code == 2
    assert "nope.yaml" in result.stderr


def test_an_invalid_config_exits_2_naming_the_key(run: Run, home: Path) -> None:
    text = (REPO_ROOT / "config" / "futures_alt_ensemble.yaml").read_text(encoding="utf-8")
    bad = home / "bad.yaml"
    bad.write_text(text.replace("weight_pct: 46", "weight_pct: 40"), encoding="utf-8")
    result = run(["backtest", "-c", bad])
    assert result.exit_code == 2
    assert "bad.yaml" in result.stderr


def test_an_unknown_symbol_exits_2(run: Run) -> None:
    result = run(["backtest", "--symbol", "DOGEUSDT"])
    assert result.exit_code == 2
    assert "DOGEUSDT" in result.stderr


def test_start_after_end_exits_2(run: Run) -> None:
    result = run(["backtest", "--start", "2025-06-01", "--end", "2025-01-01"])
    assert result.exit_code == 2
    assert "--start" in result.stderr


def test_an_unparsable_date_exits_2(run: Run) -> None:
    assert run(["backtest", "--start", "yesterday"]).exit_code == 2


def test_a_window_outside_the_data_exits_2(run: Run) -> None:
    assert run(["backtest", "--start", "2030-01-01"]).exit_code == 2


def test_a_missing_data_directory_exits_2(run: Run, home: Path) -> None:
    result = run(["backtest", "--data", home / "no-such-dir"])
    assert result.exit_code == 2
    assert "no-such-dir" in result.stderr


def test_a_data_directory_without_the_symbols_exits_2(run: Run, home: Path) -> None:
    empty = home / "empty"
    empty.mkdir()
    result = run(["backtest", "--data", empty])
    assert result.exit_code == 2
    assert "ETHUSDT" in result.stderr


def test_a_negative_cost_multiplier_exits_2(run: Run) -> None:
    assert run(["backtest", "--cost-multiplier", "-1"]).exit_code == 2
