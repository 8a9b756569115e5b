"""Regime buckets (seed 004), regime hard gates (seed 001 §2) and volatility thresholds.

Every rule is stated where it is implemented and in docs/regimes.md. Inputs are plain numbers
and arrays/Series; thresholds are arguments with the seeds' values as defaults.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import time
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

UP, DOWN, FLAT = "up", "down", "flat"
LOW, MID, HIGH, UNKNOWN = "low", "mid", "high", "unknown"
NY, OVERNIGHT = "ny", "overnight"
TREND, RANGE, PANIC, ILLIQUID, NEUTRAL = "TREND", "RANGE", "PANIC", "ILLIQUID", "NEUTRAL"
REGIME_PRECEDENCE = (ILLIQUID, PANIC, TREND, RANGE)
REGIME_LABELS = (*REGIME_PRECEDENCE, NEUTRAL)  # ``regime_codes`` indexes these
_CODE = {label: np.int8(k) for k, label in enumerate(REGIME_LABELS)}

npt_str = Any  # a numpy array of labels


def trend_bucket(window_return: Any, threshold_pct: float = 0.1) -> npt_str:
    """``up`` when the window return > +threshold, ``down`` when < -threshold, else ``flat``
    (returns as fractions: 0.001 = 0.1 %; NaN is ``flat``)."""
    r = np.asarray(window_return, dtype=float)
    t = threshold_pct / 100.0
    return np.select([r > t, r < -t], [UP, DOWN], FLAT)


def volatility_bucket(
    sigma_per_min: Any, low_max: float = 0.0006, high_percentile: float = 90.0
) -> npt_str:
    """``low`` when sigma <= ``low_max``; the other windows split at the ``high_percentile``-th
    percentile of their own sigmas (linear interpolation): ``high`` above it, ``mid`` at or
    below it; NaN is ``unknown``."""
    s = np.asarray(sigma_per_min, dtype=float)
    finite = np.isfinite(s)
    rest = s[finite & (s > low_max)]
    split = float(np.percentile(rest, high_percentile)) if len(rest) else np.inf
    return np.select([~finite, s <= low_max, s > split], [UNKNOWN, LOW, HIGH], MID)


def session_bucket(
    timestamps: pd.DatetimeIndex, ny_start_utc: time = time(13, 30), ny_end_utc: time = time(20, 0)
) -> npt_str:
    """``ny`` when the UTC time of day is in ``[ny_start_utc, ny_end_utc)`` (the window may wrap
    past midnight when start > end), else ``overnight``."""
    idx = pd.DatetimeIndex(timestamps)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC")
    minute = idx.hour * 60 + idx.minute + idx.second / 60.0
    start = ny_start_utc.hour * 60 + ny_start_utc.minute + ny_start_utc.second / 60.0
    end = ny_end_utc.hour * 60 + ny_end_utc.minute + ny_end_utc.second / 60.0
    inside = (
        (minute >= start) & (minute < end) if start <= end else (minute >= start) | (minute < end)
    )
    return np.where(np.asarray(inside), NY, OVERNIGHT)


@dataclass(frozen=True)
class RegimeRules:
    """Seed 001 §2 hard gates. Percentages are percent (5.0 = 5 %).

    ``volatility_pct`` is the daily-scaled realized volatility (see ``regime_inputs``);
    "high volume" (PANIC) is our reading: volume at least ``panic_volume_ratio_min`` times its
    trailing median; ILLIQUID's "volume < 30 %" is read against the same trailing median.
    """

    trend_adx_min: float = 25.0
    range_adx_max: float = 20.0
    range_vol_min_pct: float = 1.0
    range_vol_max_pct: float = 4.0
    panic_vol_min_pct: float = 5.0
    panic_volume_ratio_min: float = 1.5
    illiquid_volume_ratio_max_pct: float = 30.0
    illiquid_spread_min_bps: float = 50.0


def classify_regimes(
    adx: Any,
    volatility_pct: Any,
    trend_return: Any,
    volume_ratio: Any,
    spread_bps: Any = None,
    rules: RegimeRules = RegimeRules(),
) -> npt_str:
    """One label per bar, first match in the order ILLIQUID, PANIC, TREND, RANGE, else NEUTRAL.

    - ILLIQUID: ``volume_ratio < illiquid_volume_ratio_max_pct / 100`` or
      ``spread_bps > illiquid_spread_min_bps`` (spread ignored when not given or NaN).
    - PANIC: ``volatility_pct > panic_vol_min_pct`` and ``trend_return < 0`` and
      ``volume_ratio >= panic_volume_ratio_min``.
    - TREND: ``adx > trend_adx_min``.
    - RANGE: ``adx < range_adx_max`` and
      ``range_vol_min_pct <= volatility_pct <= range_vol_max_pct``.
    NaN inputs fail the comparisons that use them, so warm-up bars end up NEUTRAL.
    Precedence: no orders can be worked in an illiquid book whatever the trend; a crash is a
    risk-off state even when ADX reads it as a strong trend; ADX > 25 beats a range reading.
    """
    return np.asarray(REGIME_LABELS)[
        regime_codes(adx, volatility_pct, trend_return, volume_ratio, spread_bps, rules)
    ]


def regime_codes(
    adx: Any,
    volatility_pct: Any,
    trend_return: Any,
    volume_ratio: Any,
    spread_bps: Any = None,
    rules: RegimeRules = RegimeRules(),
) -> npt.NDArray[np.int8]:
    """``classify_regimes`` as positions in ``REGIME_LABELS`` (int8): what a caller that
    counts the regimes of a year of minutes needs, without a string per bar."""
    a = np.asarray(adx, dtype=float)
    vol = np.asarray(volatility_pct, dtype=float)
    ret = np.asarray(trend_return, dtype=float)
    vr = np.asarray(volume_ratio, dtype=float)
    codes = np.full(a.shape, _CODE[NEUTRAL], dtype=np.int8)
    with np.errstate(invalid="ignore"):
        # the lowest precedence first, so that each higher one overwrites it
        ranging = (a < rules.range_adx_max) & (vol >= rules.range_vol_min_pct)
        ranging &= vol <= rules.range_vol_max_pct
        codes[ranging] = _CODE[RANGE]
        codes[a > rules.trend_adx_min] = _CODE[TREND]
        panic = (vol > rules.panic_vol_min_pct) & (ret < 0)
        panic &= vr >= rules.panic_volume_ratio_min
        codes[panic] = _CODE[PANIC]
        illiquid = vr < rules.illiquid_volume_ratio_max_pct / 100.0
        if spread_bps is not None:
            illiquid |= np.asarray(spread_bps, dtype=float) > rules.illiquid_spread_min_bps
        codes[illiquid] = _CODE[ILLIQUID]
    return codes


def regime_inputs(
    candles: pd.DataFrame,
    *,
    adx_period: int = 14,
    vol_window_bars: int = 1440,
    bars_per_day: int = 1440,
    volume_median_window_bars: int = 1440,
) -> pd.DataFrame:
    """The inputs of ``classify_regimes`` from OHLCV candles (columns high, low, close, volume).

    - ``adx``: Wilder's ADX(``adx_period``).
    - ``volatility_pct``: std (ddof=1) of one-bar log returns over ``vol_window_bars``, scaled
      to one day by ``sqrt(bars_per_day)``, in percent.
    - ``trend_return``: close-to-close return over the same ``vol_window_bars``.
    - ``volume_ratio``: volume / median volume of the previous ``volume_median_window_bars``
      bars (the current bar excluded).
    """
    from stagectl.domain.indicators import adx, log_returns

    volume = candles["volume"].astype(float)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # pandas' rolling median (a skiplist, most of this function's time) releases the
        # GIL: it runs beside the ADX and the volatility on a second core
        trailing = pool.submit(
            lambda: (
                volume.shift(1)
                .rolling(volume_median_window_bars, min_periods=volume_median_window_bars)
                .median()
            )
        )
        close = candles["close"].astype(float)
        sigma = log_returns(close).rolling(vol_window_bars, min_periods=vol_window_bars)
        inputs = pd.DataFrame(
            {
                "adx": adx(candles["high"], candles["low"], close, adx_period)["adx"].to_numpy(),
                "volatility_pct": (sigma.std(ddof=1) * np.sqrt(bars_per_day) * 100.0).to_numpy(),
                "trend_return": (close / close.shift(vol_window_bars) - 1.0).to_numpy(),
            },
            index=candles.index,
            copy=False,
        )
        median = trailing.result()
    inputs["volume_ratio"] = (volume / median.where(median > 0)).to_numpy()
    return inputs


def regime_labels(candles: pd.DataFrame, bar_minutes: float) -> npt_str:
    """One seed 001 regime label per bar of ``candles`` at ``bar_minutes`` bars, the rules'
    defaults, with a one-day window for volatility, trend and the volume median (run-live's
    decision events: the label of bar k-1 is what the open of bar k knows)."""
    per_day = max(round(1440 / bar_minutes), 2)
    inputs = regime_inputs(
        candles, vol_window_bars=per_day, bars_per_day=per_day, volume_median_window_bars=per_day
    )
    return classify_regimes(
        inputs["adx"], inputs["volatility_pct"], inputs["trend_return"], inputs["volume_ratio"]
    )


def threshold_states(
    vol_bps: pd.Series,
    *,
    low_vol_pause_bps: float = 4.5,
    low_vol_resume_bps: float = 5.5,
    regime_switch_bps: float = 6.0,
    high_vol_pause_bps: float = 30.0,
) -> pd.DataFrame:
    """The maker's volatility switches (maker.yaml) over a volatility series in bps.

    - ``low_vol_pause``: turns on when ``vol < low_vol_pause_bps``, off when
      ``vol >= low_vol_resume_bps``; between the two it keeps its state (hysteresis).
    - ``defensive``: ``vol >= regime_switch_bps`` (the regime switch; no hysteresis given).
    - ``high_vol_pause``: ``vol > high_vol_pause_bps``.
    States start off; NaN samples keep the previous state. Vectorised: the hysteresis is a
    forward fill of the on/off decisions.
    """
    if low_vol_resume_bps < low_vol_pause_bps:
        raise ValueError("low_vol_resume_bps must be >= low_vol_pause_bps")
    v = vol_bps.to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        decided = (v >= low_vol_resume_bps) | (v < low_vol_pause_bps)
        at = _last_where(decided)
        low_vol_pause = (at >= 0) & (v[at] < low_vol_pause_bps)
        at = _last_where(~np.isnan(v))
        seen = at >= 0
        at_v = v[at]
        defensive = seen & (at_v >= regime_switch_bps)
        high_vol_pause = seen & (at_v > high_vol_pause_bps)
    return pd.DataFrame(
        {"low_vol_pause": low_vol_pause, "defensive": defensive, "high_vol_pause": high_vol_pause},
        index=vol_bps.index,
    )


def _last_where(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    """The index of the last True of ``mask`` at or before each position, -1 before the
    first: the hysteresis as a forward fill in numpy (on a bool-or-NaN object Series,
    pandas' ``ffill`` costs about 0.1 s per year of minutes). Indexing with -1 reads the
    last sample; callers mask those positions out."""
    at = np.arange(len(mask), dtype=np.intp)
    at[~mask] = -1
    if len(at):
        np.maximum.accumulate(at, out=at)
    return at


def threshold_events(states: pd.DataFrame, vol_bps: pd.Series) -> pd.DataFrame:
    """Each switch of each state: columns ``ts``, ``signal``, ``on`` (bool), ``vol_bps``."""
    rows = []
    for signal in states.columns:
        s = states[signal].to_numpy()
        changed = np.flatnonzero(s != np.concatenate(([False], s[:-1])))
        for i in changed:
            rows.append((states.index[int(i)], signal, bool(s[i]), float(vol_bps.iloc[i])))
    events = pd.DataFrame(rows, columns=["ts", "signal", "on", "vol_bps"])
    return events.sort_values(["ts", "signal"], kind="stable").reset_index(drop=True)


def bucket_stats(pnl: Any, buckets: Any) -> pd.DataFrame:
    """Per bucket: ``count``, ``mean_pnl``, ``total_pnl`` and ``win_rate`` (share of windows
    with PnL > 0; a zero window is not a win). Sorted by bucket label."""
    frame = pd.DataFrame({"pnl": np.asarray(pnl, dtype=float), "bucket": np.asarray(buckets)})
    grouped = frame.groupby("bucket", sort=True)["pnl"]
    return pd.DataFrame(
        {
            "count": grouped.size(),
            "mean_pnl": grouped.mean(),
            "total_pnl": grouped.sum(),
            "win_rate": grouped.apply(lambda x: float((x > 0).mean())),
        }
    )


def inventory_correlation(realized_pnl: Any, inventory_delta: Any) -> float:
    """Pearson correlation of per-window realized PnL with per-window inventory change.

    NaN when fewer than 3 windows or when either series is constant."""
    x = np.asarray(realized_pnl, dtype=float)
    y = np.asarray(inventory_delta, dtype=float)
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])
