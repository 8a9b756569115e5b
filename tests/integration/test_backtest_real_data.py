"""The seed-003 portfolio on real ETH and SOL perp data, metrics checked independently."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stagectl.domain.backtest import BacktestResult, SleeveSpec, run_backtest
from stagectl.domain.performance import summarize
from stagectl.domain.strategies import debounce, tsmom_ema, tsmom_multi_ema
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data not present")


def read(name: str) -> pd.DataFrame:
    frame = pd.read_csv(SHARED_DATA / name, parse_dates=["timestamp"])
    return frame.set_index("timestamp")


@pytest.fixture(scope="module")
def alt_ensemble() -> tuple[BacktestResult, dict[str, Any]]:
    eth = read("binance_perp_ETHUSDT_1h_ohlcv.csv.gz")
    sol = read("binance_perp_SOLUSDT_1h_ohlcv.csv.gz")
    index = eth.index.intersection(sol.index)
    eth, sol = eth.loc[index], sol.loc[index]
    eth_target = debounce(tsmom_multi_ema(eth["close"], [72, 168, 336, 720], 0.0), 2)
    sol_target = debounce(tsmom_ema(sol["close"], 168), 2)
    result = run_backtest(
        [
            SleeveSpec(
                "ETHUSDT",
                eth["open"],
                eth_target,
                0.54,
                read("binance_perp_ETHUSDT_8h_funding.csv.gz")["funding_rate"],
            ),
            SleeveSpec(
                "SOLUSDT",
                sol["open"],
                sol_target,
                0.46,
                read("binance_perp_SOLUSDT_8h_funding.csv.gz")["funding_rate"],
            ),
        ],
        fee_bps=5.0,
        slippage_bps=3.0,
        initial_equity=100_000.0,
    )
    volume = pd.DataFrame(
        {"ETHUSDT": eth["volume"] * eth["close"], "SOLUSDT": sol["volume"] * sol["close"]}
    )
    return result, summarize(result, "1h", volume)


def test_net_returns_are_the_equity_curves_percentage_changes(alt_ensemble: Any) -> None:
    result, _ = alt_ensemble
    equity = pd.concat([pd.Series([result.initial_equity]), result.equity.reset_index(drop=True)])
    recomputed = equity.pct_change().iloc[1:].to_numpy()
    assert recomputed == pytest.approx(result.net_returns.to_numpy(), abs=1e-12)


def test_reported_metrics_agree_with_an_independent_recomputation(alt_ensemble: Any) -> None:
    result, summary = alt_ensemble
    equity = np.concatenate(([result.initial_equity], result.equity.to_numpy()))
    returns = equity[1:] / equity[:-1] - 1.0
    assert summary["sharpe_net"] == pytest.approx(
        returns.mean() / returns.std(ddof=1) * math.sqrt(8760)
    )
    assert summary["annualisation_factor"] == pytest.approx(math.sqrt(8760))
    peak = np.maximum.accumulate(equity)
    assert summary["max_drawdown"] == pytest.approx(np.max(1.0 - equity / peak))
    assert summary["total_return"] == pytest.approx(equity[-1] / equity[0] - 1.0)
    years = (len(equity) - 1) / 8760
    assert summary["cagr"] == pytest.approx((equity[-1] / equity[0]) ** (1 / years) - 1.0)


def test_pnl_decomposes_into_gross_minus_costs_and_into_trades(alt_ensemble: Any) -> None:
    result, summary = alt_ensemble
    change = result.equity.iloc[-1] - result.initial_equity
    costs = summary["fee"] + summary["slippage"] + summary["funding"]
    assert summary["gross_pnl"] - costs == pytest.approx(change, rel=1e-9)
    assert result.trades["pnl"].sum() == pytest.approx(change, rel=1e-9)


def test_alt_ensemble_positions_stay_in_the_runbook_states(alt_ensemble: Any) -> None:
    result, summary = alt_ensemble
    assert set(np.unique(result.positions.to_numpy())) <= {-1.0, 0.0, 1.0}
    assert summary["fee"] > 0
    assert summary["capacity"]["fills"] > 0


def test_summary_is_valid_canonical_json(alt_ensemble: Any) -> None:
    _, summary = alt_ensemble
    json.dumps(summary, allow_nan=False)
