"""The guard's flow inputs of a backtest's bars (``guard_tape.guard_flows``), bar by bar
and block by block."""

from __future__ import annotations

import numpy as np
import pytest

from stagectl.domain import guard_tape
from stagectl.domain.guard_tape import guard_flows


def backtest_bars(bars: int, seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    moved = rng.random((bars, 2)) < 0.3
    turnover = np.where(moved, rng.random((bars, 2)), 0.0)
    return {
        "equity_before": 10_000.0 * np.cumprod(1.0 + rng.normal(0.0, 0.01, bars)),
        "net": rng.normal(0.0, 0.01, (bars, 2)),
        "turnover": turnover,
        "slip_cur": np.where(moved & (rng.random((bars, 2)) < 0.8), rng.random((bars, 2)), 0.0),
        "funding_cur": rng.normal(0.0, 0.5, (bars, 2)),
        "weights": np.array([0.6, 0.4]),
    }


def test_flows_are_the_per_bar_definition() -> None:
    bars = backtest_bars(300)
    flows = guard_flows(**bars)
    w = bars["weights"]
    for t in range(300):
        before, turnover, slip = bars["equity_before"][t], bars["turnover"][t], bars["slip_cur"][t]
        notional = turnover * w * before
        fills = (turnover > 0) & (slip > 0)
        assert flows["turnover"][t] == pytest.approx((turnover * w).sum() / w.sum())
        assert flows["trades"][t].tolist() == (turnover > 0).astype(float).tolist()
        assert flows["slippage_fills"][t] == fills.sum()
        expected_bps = (slip[fills] / notional[fills] * 1e4).sum()
        assert flows["slippage_bps_sum"][t] == pytest.approx(expected_bps)
        assert flows["funding_paid"][t] == pytest.approx(bars["funding_cur"][t].sum())
        expected_pnl = bars["net"][t] * w * before
        assert flows["sleeve_pnl"][t] == pytest.approx(expected_pnl)


@pytest.mark.parametrize("block", [1, 7, 64])
def test_flows_block_by_block_are_the_whole_columns_to_the_last_bit(block: int) -> None:
    """Minute bars are done in cache-sized blocks: the same doubles as one block."""
    bars = backtest_bars(500)
    whole = guard_flows(**bars)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(guard_tape, "BLOCK", block)
        blocks = guard_flows(**bars)
    assert whole.keys() == blocks.keys()
    for name, values in whole.items():
        assert np.array_equal(blocks[name], values), name
