"""Time-series momentum signals, debounce and execution timing (seed 003).

Conventions shared by every function here (docs/strategies.md has worked examples):

- Bars are labelled by their open time. A signal uses bar t's close, so it is
  known at the end of bar t, which is the open of bar t+1.
- ``target[t]`` is the position the strategy wants after seeing bar t's close,
  as a fraction of sleeve equity: -1 short, 0 flat, +1 long (fractional values
  only from ``tsmom_multi_ema`` with ``disagree_weight != 0``).
- ``held_positions(target, d)`` is the position held over bar k, from open[k]
  to open[k+1]: ``held[k] = target[k - d]`` (0 before that). With d = 1 the
  target computed at bar t's close is traded at the open of bar t+1.

All functions are vectorised (numpy/pandas); none loops over bars in Python.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stagectl.errors import InputError


def _check_close(close: pd.Series) -> np.ndarray:
    values = close.to_numpy(dtype=float)
    if values.size and not (np.isfinite(values).all() and (values > 0).all()):
        raise InputError("close prices must be finite and positive", where="close")
    return values


def ema_of_log_returns(close: pd.Series, lookback: int) -> pd.Series:
    """EWMA of log returns: ``lr[t] = ln(close[t] / close[t-1])``, span = lookback.

    Recursion (pandas ``adjust=False``): ``m[1] = lr[1]``,
    ``m[t] = a * lr[t] + (1 - a) * m[t-1]`` with ``a = 2 / (lookback + 1)``.
    ``m[0]`` is NaN (no return yet).
    """
    if lookback < 1:
        raise InputError(f"lookback must be >= 1, got {lookback}", where="lookback")
    _check_close(close)
    log_returns = pd.Series(np.log(close.to_numpy(dtype=float)), index=close.index).diff()
    ema: pd.Series = log_returns.ewm(span=lookback, adjust=False).mean()
    return ema


def tsmom_ema(close: pd.Series, lookback: int) -> pd.Series:
    """Single-lookback TSMOM target: ``sign(EWMA_span=lookback(log returns))``.

    Warm-up: flat (0) until ``lookback`` log returns exist, i.e. for bars
    t < lookback (bar t has t returns behind it). From bar ``lookback`` on the
    target is ``sign(m[t])`` in {-1, 0, +1} (0 only when the EWMA is exactly 0).
    """
    ema = ema_of_log_returns(close, lookback).to_numpy()
    target = np.sign(np.nan_to_num(ema, nan=0.0))
    target[: min(lookback, target.size)] = 0.0
    return pd.Series(target, index=close.index, name="target")


def tsmom_multi_ema(
    close: pd.Series, lookbacks: Sequence[int], disagree_weight: float = 0.0
) -> pd.Series:
    """Multi-lookback TSMOM target.

    With ``s_j = tsmom_ema(close, lookbacks[j])`` (each with its own warm-up):
    if every ``s_j`` is equal the target is that common value; otherwise it is
    ``disagree_weight * mean_j(s_j)``.

    - ``disagree_weight == 0`` (seed 003): flat whenever the lookbacks disagree;
      a lookback still in warm-up has sign 0, so the target is flat until the
      longest lookback is warm (unless all signs are 0 anyway). Targets are in
      {-1, 0, +1}.
    - ``disagree_weight != 0``: targets become fractional, in
      ``[-|disagree_weight|, |disagree_weight|]`` when the signs disagree, and
      in [-1, 1] overall for ``|disagree_weight| <= 1`` (enforced).
    """
    if not lookbacks:
        raise InputError("at least one lookback is required", where="lookbacks")
    if not -1.0 <= disagree_weight <= 1.0:
        raise InputError(
            f"disagree_weight must be in [-1, 1], got {disagree_weight}", where="disagree_weight"
        )
    signs = np.column_stack([tsmom_ema(close, lb).to_numpy() for lb in lookbacks])
    agree = (signs == signs[:, :1]).all(axis=1)
    target = np.where(agree, signs[:, 0], disagree_weight * signs.mean(axis=1))
    return pd.Series(target + 0.0, index=close.index, name="target")


def debounce(raw: pd.Series, bars: int = 2) -> pd.Series:
    """Take a new position only after ``raw`` has held it for ``bars`` consecutive bars.

    Let ``run[t]`` be the length of the run of equal raw values ending at t.
    Where ``run[t] >= bars`` the output is ``raw[t]`` (the value is confirmed);
    elsewhere the output keeps the last confirmed value, starting flat (0).
    ``bars = 1`` returns ``raw`` unchanged. Applies to every change, including
    going flat. Vectorised: run starts from value changes, run lengths from the
    index of each run's start, then a forward fill of the last confirmed value.
    """
    if bars < 1:
        raise InputError(f"debounce bars must be >= 1, got {bars}", where="debounce_bars")
    values = raw.to_numpy(dtype=float)
    n = values.size
    if n == 0:
        return pd.Series(values, index=raw.index, name=raw.name)
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    starts[1:] = values[1:] != values[:-1]
    idx = np.arange(n)
    run_start = np.maximum.accumulate(np.where(starts, idx, 0))
    run_length = idx - run_start + 1
    confirmed = (run_length >= bars) & ~np.isnan(values)  # a missing value confirms nothing
    last_confirmed = np.maximum.accumulate(np.where(confirmed, idx, -1))
    debounced = np.where(last_confirmed >= 0, values[np.maximum(last_confirmed, 0)], 0.0)
    return pd.Series(debounced, index=raw.index, name=raw.name)


def held_positions(target: pd.Series, signal_delay: int = 1) -> pd.Series:
    """Position held over each bar: ``held[k] = target[k - signal_delay]``, 0 before.

    The target from bar t's close is traded at the open of bar t + signal_delay
    and held from that open to the next one. ``signal_delay`` must be >= 1:
    0 would trade at the open of the bar whose close made the signal
    (look-ahead).
    """
    if signal_delay < 1:
        raise InputError(
            f"signal_delay must be >= 1 (0 would look ahead), got {signal_delay}",
            where="signal_delay",
        )
    return target.shift(signal_delay).fillna(0.0).rename("position")
