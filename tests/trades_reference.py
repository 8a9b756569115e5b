"""The trades table's per-sleeve algorithm as it was before issue 13's speed-up, frozen
as the reference the faster one is tested against (tests/unit/test_backtest.py).

For tests only: it computes every quantity on every bar (the faster one works on the
bars where the position changes). Its ``exit_time`` was an object column, so a sleeve
whose every trade is still open had a naive ``datetime64[s]`` column; that is not part
of what is compared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FloatArray = np.ndarray


def sleeve_trades(
    index: pd.DatetimeIndex,
    name: str,
    open_: FloatArray,
    held: FloatArray,
    gross_cur: FloatArray,
    funding_cur: FloatArray,
    fee_cur: FloatArray,
    slip_cur: FloatArray,
) -> pd.DataFrame:
    n = held.size
    sign = np.sign(held)
    prev_sign = np.concatenate(([0.0], sign[:-1]))
    prev_held = np.concatenate(([0.0], held[:-1]))
    active = sign != 0
    starts = active & (sign != prev_sign)
    if not starts.any():
        return pd.DataFrame()
    # cost at open k: the entering trade's share and the exiting trade's share
    delta = np.abs(held - prev_held)
    flip = sign != prev_sign
    safe = np.where(delta > 0, delta, 1.0)
    entry_frac = np.where(flip, np.abs(held) / safe, 1.0)
    exit_frac = np.where(flip, np.abs(prev_held) / safe, 0.0)

    def on_held_interval(values: FloatArray) -> FloatArray:
        """Move values stamped k+1 (realised on held[k]) onto interval k."""
        return np.concatenate((values[1:], [0.0]))

    fee = fee_cur * entry_frac + on_held_interval(fee_cur * exit_frac)
    slip = slip_cur * entry_frac + on_held_interval(slip_cur * exit_frac)
    gross = on_held_interval(gross_cur)
    funding = on_held_interval(funding_cur)
    bars = np.arange(n)
    entry_bar = bars[starts]

    def total(values: FloatArray) -> FloatArray:
        # flat bars carry zero pnl and zero attributed cost, so each segment
        # from one trade's entry to the next one's sums exactly that trade
        return np.add.reduceat(values, entry_bar)

    next_sign = np.concatenate((sign[1:], [0.0]))
    exit_bar = bars[active & (next_sign != sign)] + 1
    is_open = exit_bar >= n
    exit_clipped = np.minimum(exit_bar, n - 1)
    gross_t, fee_t, slip_t, fund_t = total(gross), total(fee), total(slip), total(funding)
    costs = fee_t + slip_t + fund_t
    exit_time = pd.Series(index[exit_clipped]).where(~is_open)
    return pd.DataFrame(
        {
            "symbol": name,
            "side": np.where(sign[starts] > 0, "long", "short"),
            "entry_time": index[entry_bar],
            "exit_time": exit_time.to_numpy(),
            "entry_price": open_[entry_bar],
            "exit_price": np.where(is_open, np.nan, open_[exit_clipped]),
            "entry_position": held[starts],
            "holding_bars": exit_clipped - entry_bar,
            "gross_pnl": gross_t,
            "fee": fee_t,
            "slippage": slip_t,
            "funding": fund_t,
            "costs": costs,
            "pnl": gross_t - costs,
            "is_open": is_open,
        }
    )
