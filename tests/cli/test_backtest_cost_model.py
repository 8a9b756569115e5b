"""`stagectl backtest --cost-model flat|full` on the bundled data."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Run

WINDOW = ["--start", "2025-10-01", "--end", "2025-12-31"]


def _metrics(run: Run, *extra: str) -> tuple[dict[str, Any], dict[str, Any]]:
    result = run(["backtest", *WINDOW, *extra, "--json"])
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)["body"]
    return body["strategy"]["costs"], body["metrics"]


def test_flat_is_the_default_and_charges_the_configs_fee_and_slippage(run: Run) -> None:
    costs, metrics = _metrics(run)
    summary = metrics["cost_model"]
    assert costs["model"] == summary["model"] == "flat"
    assert summary["avg_cost_bps_per_execution"] == pytest.approx(8.0)
    assert summary["avg_fee_bps"] == pytest.approx(5.0)
    assert summary["avg_slippage_bps"] == pytest.approx(3.0)


def test_full_differs_from_flat_and_reports_its_fee_and_slippage_split(run: Run) -> None:
    _, flat = _metrics(run, "--cost-model", "flat")
    costs, full = _metrics(run, "--cost-model", "full")
    summary = full["cost_model"]
    assert costs["model"] == summary["model"] == "full"
    assert costs["full"]["venue"] == "binance" and costs["full"]["taker_fee_bps"] == 5.0
    assert summary["executions"] == flat["cost_model"]["executions"] > 0
    assert full["final_equity"] != pytest.approx(flat["final_equity"], rel=1e-6)
    assert summary["avg_cost_bps_per_execution"] != pytest.approx(8.0, abs=0.01)
    assert summary["avg_fee_bps"] == pytest.approx(5.0)
    assert summary["avg_half_spread_bps"] >= 0.5  # the 1 bp spread floor, halved
    assert summary["avg_impact_bps"] > 0.0
    assert summary["avg_half_spread_bps"] + summary["avg_impact_bps"] == pytest.approx(
        summary["avg_slippage_bps"]
    )
    assert full["fee"] + full["slippage"] == pytest.approx(
        summary["avg_cost_bps_per_execution"] / 1e4 * summary["traded_notional"]
    )


def test_the_human_report_names_the_cost_model_and_the_average_cost(run: Run) -> None:
    result = run(["backtest", *WINDOW, "--cost-model", "full"])
    assert result.exit_code == 0, result.stderr
    assert "cost model full (seed 001)" in result.stdout
    assert "avg cost per trade (execution, notional-weighted):" in result.stdout


def test_full_with_breakers_runs_both(run: Run) -> None:
    _, metrics = _metrics(run, "--cost-model", "full", "--breakers")
    assert metrics["cost_model"]["model"] == "full"
    assert "breakers" in metrics


def test_an_unknown_cost_model_exits_2(run: Run) -> None:
    result = run(["backtest", *WINDOW, "--cost-model", "fancy"])
    assert result.exit_code == 2
    assert "--cost-model" in result.stderr
