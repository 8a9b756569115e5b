"""Indicators on price series: Wilder's ADX/DI, realized and EMA volatility.

Inputs are float arrays or pandas Series without NaN (callers validate data first); outputs
keep the input's index. Returns are log returns ``ln(p_t / p_{t-1})``.

A year of minutes is half a million values: each full-length temporary is 4 MB whose first
touch costs milliseconds, so the array code reuses its buffers (``out=``) where it can.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

BPS = 10_000.0
_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}  # a DatetimeIndex's unit


def _series(values: Any) -> pd.Series:
    return values.astype(float) if isinstance(values, pd.Series) else pd.Series(values, dtype=float)


def wilder_smooth(values: pd.Series, period: int, first: int) -> pd.Series:
    """Wilder's running average from position ``first``.

    ``S[first + period - 1] = mean(x[first : first + period])`` and afterwards
    ``S[t] = S[t-1] + (x[t] - S[t-1]) / period`` (an EMA with ``alpha = 1/period`` seeded with
    the simple mean); NaN before the seed. Computed with pandas' ``ewm(adjust=False)``.
    """
    return pd.Series(_wilder(values.to_numpy(dtype=float), period, first), index=values.index)


def _wilder(values: np.ndarray, period: int, first: int) -> np.ndarray:
    """``wilder_smooth`` on an array (the seed is pandas' mean of the seed window)."""
    seed_at = first + period - 1
    out = np.full(len(values), np.nan)
    if len(values) > seed_at:
        tail = out[seed_at:]
        tail[:] = values[seed_at:]
        tail[0] = pd.Series(values[first : seed_at + 1]).mean()
        smooth = pd.Series(tail, copy=False).ewm(alpha=1.0 / period, adjust=False)
        tail[:] = smooth.mean().to_numpy()
    return out


def adx(high: Any, low: Any, close: Any, period: int = 14) -> pd.DataFrame:
    """Wilder's ADX with +DI and -DI (J. Welles Wilder, 1978).

    For bar t >= 1: ``TR = max(H-L, |H-C[t-1]|, |L-C[t-1]|)``; ``up = H-H[t-1]``,
    ``down = L[t-1]-L``; ``+DM = up if up > down and up > 0 else 0``; ``-DM = down if down > up
    and down > 0 else 0``. TR, +DM, -DM are Wilder-smoothed over ``period`` from bar 1 (first
    value at bar ``period``); ``+DI = 100 * S(+DM) / S(TR)``, ``-DI`` likewise (0 when
    ``S(TR) = 0``); ``DX = 100 * |+DI - -DI| / (+DI + -DI)`` (0 when both are 0); ADX is DX
    Wilder-smoothed from bar ``period`` (first value at bar ``2 * period - 1``).
    Columns: ``plus_di``, ``minus_di``, ``dx``, ``adx``. In numpy on arrays (bar 0's TR and
    DM are never read: the smoothing starts at bar 1).
    """
    index = high.index if isinstance(high, pd.Series) else pd.RangeIndex(len(high))
    h, lo, c = (np.asarray(x, dtype=float) for x in (high, low, close))
    n = len(h)
    tr, plus_dm, minus_dm = np.zeros(n), np.zeros(n), np.zeros(n)
    if n > 1:
        np.subtract(h[1:], lo[1:], out=tr[1:])
        up, down = np.subtract(h[1:], c[:-1]), np.subtract(lo[1:], c[:-1])
        np.maximum(
            tr[1:], np.maximum(np.abs(up, out=up), np.abs(down, out=down), out=up), out=tr[1:]
        )
        np.subtract(h[1:], h[:-1], out=up)
        np.subtract(lo[:-1], lo[1:], out=down)
        np.copyto(plus_dm[1:], up, where=(up > down) & (up > 0))
        np.copyto(minus_dm[1:], down, where=(down > up) & (down > 0))
    atr = _wilder(tr, period, 1)
    plus_di, minus_di = _wilder(plus_dm, period, 1), _wilder(minus_dm, period, 1)
    zero_atr = atr == 0  # NaN (before the seed) stays NaN through the division
    with np.errstate(divide="ignore", invalid="ignore"):
        for di in (plus_di, minus_di):
            di *= 100.0
            di /= atr
            di[zero_atr] = 0.0
        di_sum = plus_di + minus_di
        dx = np.subtract(plus_di, minus_di)
        np.abs(dx, out=dx)
        dx *= 100.0
        dx /= di_sum
    dx[di_sum == 0] = 0.0
    return pd.DataFrame(
        {"plus_di": plus_di, "minus_di": minus_di, "dx": dx, "adx": _wilder(dx, period, period)},
        index=index,
        copy=False,
    )


def log_returns(prices: Any) -> pd.Series:
    p = _series(prices)
    return pd.Series(np.log(p.to_numpy()), index=p.index).diff()


def realized_volatility(prices: Any, window: int) -> pd.Series:
    """Rolling standard deviation (ddof=1) of one-bar log returns over ``window`` returns.

    A per-bar sigma (not annualised): on 1-minute closes it is the per-minute sigma.
    """
    return log_returns(prices).rolling(window, min_periods=window).std(ddof=1)


def external_volatility_bps(close_1m: Any, window_min: int = 60) -> pd.Series:
    """The external reference of seed 004: per-minute sigma of 1-minute candle closes over the
    last ``window_min`` minutes, in bps (``realized_volatility(close, window_min) * 10_000``)."""
    return realized_volatility(close_1m, window_min) * BPS


def ema_volatility_bps(prices: pd.Series, half_life_s: float, unit_s: float = 60.0) -> pd.Series:
    """Exponentially weighted volatility on regular or irregular samples, in bps per ``unit_s``.

    ``prices`` is indexed by a DatetimeIndex. Each log return is scaled to a variance per
    unit time, ``x_i = r_i**2 * unit_s / dt_i`` (``dt_i`` seconds since the previous sample),
    and ``sigma_t = sqrt(sum_i w_i x_i / sum_i w_i) * 10_000`` with time-decay weights
    ``w_i = 2 ** (-(t - t_i) / half_life_s)`` (pandas ``ewm(halflife=..., times=...)``).
    With ``unit_s = 60`` the result compares with the per-minute sigma of 1-minute candles.
    """
    if not isinstance(prices.index, pd.DatetimeIndex):
        raise ValueError("prices need a DatetimeIndex")
    per_second = _PER_SECOND[prices.index.unit]
    # whole seconds plus the rest, as TimedeltaIndex.total_seconds() computes them
    whole, rest = np.divmod(np.diff(prices.index.asi8), per_second)
    dt_s = whole + rest / per_second
    if np.any(dt_s <= 0):
        raise ValueError("sample times must be strictly increasing")
    r = np.diff(np.log(prices.to_numpy(dtype=float)))
    r **= 2
    r *= unit_s
    r /= dt_s
    x: Any = pd.Series(r, index=prices.index[1:])
    var = x.ewm(halflife=pd.Timedelta(seconds=half_life_s), times=x.index).mean()
    out = np.full(len(prices), np.nan)
    np.sqrt(var.to_numpy(), out=out[1:])
    out[1:] *= BPS
    return pd.Series(out, index=prices.index)


def adx_reference_loop(
    high: list[float], low: list[float], close: list[float], period: int = 14
) -> list[float]:
    """Wilder's ADX as the textbook loop (running sums); the oracle for the vectorised one."""
    n = len(close)
    out = [math.nan] * n
    tr_s = pdm_s = mdm_s = 0.0
    dx_values: list[float] = []
    adx_value = math.nan
    for t in range(1, n):
        tr = max(high[t] - low[t], abs(high[t] - close[t - 1]), abs(low[t] - close[t - 1]))
        up, down = high[t] - high[t - 1], low[t - 1] - low[t]
        pdm = up if up > down and up > 0 else 0.0
        mdm = down if down > up and down > 0 else 0.0
        if t <= period:
            tr_s, pdm_s, mdm_s = tr_s + tr, pdm_s + pdm, mdm_s + mdm
            if t < period:
                continue
        else:
            tr_s = tr_s - tr_s / period + tr
            pdm_s = pdm_s - pdm_s / period + pdm
            mdm_s = mdm_s - mdm_s / period + mdm
        pdi = 100.0 * pdm_s / tr_s if tr_s else 0.0
        mdi = 100.0 * mdm_s / tr_s if tr_s else 0.0
        dx = 100.0 * abs(pdi - mdi) / (pdi + mdi) if pdi + mdi else 0.0
        if len(dx_values) < period:
            dx_values.append(dx)
            if len(dx_values) == period:
                adx_value = sum(dx_values) / period
                out[t] = adx_value
        else:
            adx_value = (adx_value * (period - 1) + dx) / period
            out[t] = adx_value
    return out
