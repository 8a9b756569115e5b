"""Market-data governance (seed 001, "Data Governance"): grid alignment, gaps, outliers.

Pure and vectorised: a frame in, a governed frame and a :class:`QualityReport` out.
Conventions:

- The bar grid is anchored at the Unix epoch: a bar of ``bar_s`` seconds opens at
  every multiple of ``bar_s`` since 1970-01-01T00:00Z (so 1h bars open on the hour,
  8h funding settles at 00:00, 08:00 and 16:00 UTC).
- **Time alignment**: a timestamp off the grid is snapped to the *nearest* grid
  point (``floor((t + bar/2) / bar) * bar``). Snapping is refused (InputError,
  exit 2, naming the timestamp) when it is ambiguous: a timestamp exactly half a
  bar off the grid (no nearest bar), or two rows that land on one bar with
  different values. Rows identical to the one already on their bar are dropped
  and counted as ``snap_collisions``.
- **Missing data**: a gap is a run of ``n >= 1`` missing bars between two present
  bars. A gap whose length ``n * bar_s`` is *strictly shorter* than
  ``max_fill_gap_min`` (60 min by default) is forward-filled: each synthetic bar
  has open = high = low = close = the previous close, volume 0, and ``filled`` set.
  With 1h bars no gap is ever shorter than 1 hour, so nothing is filled; with 1m
  bars up to 59 missing bars are filled, with 5m bars up to 11. Longer gaps are not
  filled: the bars stay missing ("dropped") and the gap is reported with its first
  and last missing bar and its count.
- **Outliers**: the robust z-score of the log return ``r_t = ln(close_t /
  close_{t-1})`` of consecutive bars is ``z_t = (r_t - median(r)) / (1.4826 *
  MAD)``, ``MAD = median(|r - median(r)|)`` (1.4826 makes MAD a consistent
  estimator of sigma for normal returns). Returns across a dropped gap are not
  scored. ``|z| > outlier_z`` (10 by default) sets ``outlier`` on the bar and,
  with ``clip_outliers`` (on by default), its return in the ``log_return`` column
  is clipped to ``median +- outlier_z * 1.4826 * MAD`` (the tail's edge). Prices
  are never changed: a clipped price would shift every later level. Each flagged
  bar is reported with its raw and clipped return. When MAD is 0 the score is
  undefined and nothing is flagged (``mad_log_return`` is reported as 0).
- **Cross-check** (:func:`cross_check`): two sources of one price (perp vs spot
  close, mark vs last) compared on their common bars in bps of the reference;
  the bars outside the tolerance are reported (count, worst, first few).
- **Universe** (:func:`select_universe`): a symbol is in when its average daily
  dollar volume over the last ``volume_window_days`` and its history length meet
  the declared minimums; each symbol out says which rule excluded it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from stagectl.errors import InputError

if TYPE_CHECKING:
    from stagectl.config.data_governance import UniverseConfig

NS_PER_S = 1_000_000_000
MAD_TO_SIGMA = 1.4826
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class QualityPolicy:
    """The governance rules' parameters (defaults from seed 001)."""

    max_fill_gap_min: float = 60.0
    outlier_z: float = 10.0
    clip_outliers: bool = True


@dataclass(frozen=True)
class Gap:
    """A run of missing bars: the first and last missing bar open times."""

    first_missing: datetime
    last_missing: datetime
    missing_bars: int
    filled: bool


@dataclass(frozen=True)
class Outlier:
    """A bar whose log return has a robust z-score above the threshold."""

    timestamp: datetime
    log_return: float
    robust_z: float
    clipped_to: float | None = None


@dataclass(frozen=True)
class QualityReport:
    """What governance found in one dataset and what it did about it."""

    bar_s: int
    rows_in: int
    rows_out: int
    off_grid_rows: int = 0
    off_grid_max_offset_s: float = 0.0
    snap_collisions: int = 0
    gaps: tuple[Gap, ...] = ()
    outliers: tuple[Outlier, ...] = ()
    outlier_z: float | None = None
    mad_log_return: float | None = None

    @property
    def filled_bars(self) -> int:
        return sum(g.missing_bars for g in self.gaps if g.filled)

    @property
    def dropped_bars(self) -> int:
        return sum(g.missing_bars for g in self.gaps if not g.filled)

    @property
    def dropped_gaps(self) -> tuple[Gap, ...]:
        return tuple(g for g in self.gaps if not g.filled)

    @property
    def clean(self) -> bool:
        """True when nothing was snapped, filled, dropped or flagged."""
        return not (self.off_grid_rows or self.snap_collisions or self.gaps or self.outliers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "bar_s": self.bar_s,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "off_grid_rows": self.off_grid_rows,
            "off_grid_max_offset_s": self.off_grid_max_offset_s,
            "snap_collisions": self.snap_collisions,
            "gaps": len(self.gaps),
            "filled_bars": self.filled_bars,
            "dropped_bars": self.dropped_bars,
            "filled_gaps": [_gap_dict(g) for g in self.gaps if g.filled],
            "dropped_gaps": [_gap_dict(g) for g in self.dropped_gaps],
            "outlier_z": self.outlier_z,
            "clipped": sum(o.clipped_to is not None for o in self.outliers),
            "mad_log_return": self.mad_log_return,
            "outliers": [
                {
                    "timestamp": o.timestamp,
                    "log_return": o.log_return,
                    "robust_z": o.robust_z,
                    "clipped_to": o.clipped_to,
                }
                for o in self.outliers
            ],
        }


def _gap_dict(gap: Gap) -> dict[str, Any]:
    return {
        "first_missing": gap.first_missing,
        "last_missing": gap.last_missing,
        "missing_bars": gap.missing_bars,
    }


def timeframe_seconds(timeframe: str) -> int:
    """Seconds in a timeframe such as ``1m``, ``5m``, ``1h``, ``8h``, ``1d``, ``1w``."""
    unit = timeframe[-1:]
    count = timeframe[:-1]
    if unit not in _UNIT_SECONDS or not count.isdigit() or int(count) <= 0:
        raise InputError(
            f"unknown timeframe {timeframe!r}: use a number and m, h, d or w (e.g. 1h, 5m)",
            where="timeframe",
        )
    return int(count) * _UNIT_SECONDS[unit]


def _ns(index: pd.DatetimeIndex) -> npt.NDArray[np.int64]:
    return np.asarray(index.as_unit("ns").asi8, dtype=np.int64)


def _to_index(ns: npt.NDArray[np.int64]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True), name="timestamp")


def snap_to_grid(index: pd.DatetimeIndex, bar_s: int) -> tuple[npt.NDArray[np.int64], int, float]:
    """Snap UTC timestamps to the nearest bar open (ties up).

    Returns the snapped times in ns, the number of rows that were off the grid and
    the largest absolute offset in seconds.
    """
    ns = _ns(index)
    bar_ns = bar_s * NS_PER_S
    snapped = ((ns + bar_ns // 2) // bar_ns) * bar_ns
    offset = np.abs(ns - snapped)
    off_grid = int(np.count_nonzero(offset))
    max_offset_s = float(offset.max()) / NS_PER_S if off_grid else 0.0
    return snapped, off_grid, max_offset_s


def find_gaps(
    ns: npt.NDArray[np.int64], bar_s: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Gaps in sorted, on-grid times: (first missing bar in ns, missing bar count)."""
    bar_ns = bar_s * NS_PER_S
    step = np.diff(ns)
    where = np.flatnonzero(step > bar_ns)
    missing = (step[where] // bar_ns - 1).astype(np.int64)
    return ns[where] + bar_ns, missing


def _fill_times(
    first_ns: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], bar_ns: int
) -> npt.NDArray[np.int64]:
    """Every missing bar of the given gaps, vectorised (repeat + running offset)."""
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.repeat(first_ns, counts)
    run_start = np.repeat(np.cumsum(counts) - counts, counts)
    position = np.arange(total, dtype=np.int64) - run_start
    return np.asarray(starts + position * bar_ns, dtype=np.int64)


def _with_fills(
    ns: npt.NDArray[np.int64], fill_ns: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """The sorted union of the bars and the (disjoint) filled bars, and which are filled.

    A sort and a binary search: ``np.union1d`` / ``np.isin`` hash every bar, which
    cost seconds on millions of bars."""
    if fill_ns.size == 0:
        return ns, np.zeros(ns.size, dtype=bool)
    all_ns = np.sort(np.concatenate((ns, fill_ns)))
    filled = np.zeros(all_ns.size, dtype=bool)
    filled[np.searchsorted(all_ns, fill_ns)] = True
    return all_ns, filled


def robust_z(log_returns: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], float]:
    """Robust z-scores ``(r - median) / (1.4826 * MAD)`` over the finite returns.

    NaN returns stay NaN. When MAD is 0 every score is NaN (undefined).
    """
    finite = log_returns[np.isfinite(log_returns)]
    if finite.size == 0:
        return np.full_like(log_returns, np.nan), 0.0
    median = float(np.median(finite))
    mad = float(np.median(np.abs(finite - median)))
    if mad == 0.0:
        return np.full_like(log_returns, np.nan), 0.0
    return (log_returns - median) / (MAD_TO_SIGMA * mad), mad


def _snap_frame(
    frame: pd.DataFrame, bar_s: int, source: str
) -> tuple[pd.DataFrame, int, float, int]:
    """Snap the index; InputError when a snap is ambiguous (see the module docstring)."""
    original = _ns(pd.DatetimeIndex(frame.index))
    snapped, off_grid, max_offset_s = snap_to_grid(pd.DatetimeIndex(frame.index), bar_s)
    bar_ns = bar_s * NS_PER_S
    if off_grid and bar_ns % 2 == 0:
        tie = np.flatnonzero((original - snapped) == -(bar_ns // 2))
        if tie.size:
            stamp = _ts(int(original[tie[0]])).isoformat()
            raise InputError(
                f"timestamp {stamp} is exactly half a bar ({bar_s // 2} s) off the "
                f"{bar_s} s grid: ambiguous, refused (no nearest bar to snap to)",
                where=source,
            )
    out = frame.copy()
    out.index = _to_index(snapped)
    repeated = out.index.duplicated(keep=False)
    if not repeated.any():
        return out, off_grid, max_offset_s, 0
    same = ~out[repeated].groupby(level=0).nunique().gt(1).any(axis=1)
    if not same.all():
        bar = pd.Timestamp(same.index[int(np.argmin(same.to_numpy()))]).isoformat()
        raise InputError(
            f"two rows with different values snap onto the bar {bar}: ambiguous, refused",
            where=source,
        )
    keep = ~out.index.duplicated(keep="first")
    return out[keep], off_grid, max_offset_s, int(np.count_nonzero(~keep))


def govern_candles(
    candles: pd.DataFrame,
    bar_s: int,
    policy: QualityPolicy | None = None,
    *,
    source: str = "candles",
) -> tuple[pd.DataFrame, QualityReport]:
    """Snap, fill short gaps, report long gaps, flag and clip outliers in OHLCV bars.

    ``candles`` is sorted by a UTC DatetimeIndex with columns open, high, low,
    close, volume. The result has the same columns plus boolean ``filled`` and
    ``outlier`` and float ``log_return`` (clipped where flagged, NaN on the first
    bar and after a dropped gap); see the module docstring for the rules.
    ``source`` names the data in an ambiguous-snap error.
    """
    policy = policy or QualityPolicy()
    bar_ns = bar_s * NS_PER_S
    frame, off_grid, max_offset_s, collisions = _snap_frame(
        candles.loc[:, list(OHLCV_COLUMNS)], bar_s, source
    )
    ns = _ns(pd.DatetimeIndex(frame.index))
    first_ns, counts = find_gaps(ns, bar_s)
    fillable = counts * bar_s < policy.max_fill_gap_min * 60
    fill_ns = _fill_times(first_ns[fillable], counts[fillable], bar_ns)

    all_ns, filled = _with_fills(ns, fill_ns)
    if fill_ns.size:  # the bars in place, NaN rows for the filled ones (no hashing)
        values = np.full((all_ns.size, len(OHLCV_COLUMNS)), np.nan)
        values[~filled] = frame.to_numpy(dtype=np.float64)
        governed = pd.DataFrame(values, index=_to_index(all_ns), columns=list(OHLCV_COLUMNS))
    else:
        governed = frame.copy()
    close = governed["close"].ffill()
    for column in ("open", "high", "low", "close"):
        governed[column] = governed[column].where(~filled, close)
    governed["volume"] = governed["volume"].where(~filled, 0.0)
    governed["filled"] = filled

    log_returns, scores, mad = _score_returns(governed, bar_ns)
    flagged = np.abs(np.nan_to_num(scores, nan=0.0)) > policy.outlier_z
    governed["outlier"] = flagged
    clipped = _clip(log_returns, mad, policy) if policy.clip_outliers else log_returns
    governed["log_return"] = clipped
    gaps = tuple(
        Gap(
            first_missing=_ts(int(f)),
            last_missing=_ts(int(f) + (int(n) - 1) * bar_ns),
            missing_bars=int(n),
            filled=bool(ok),
        )
        for f, n, ok in zip(first_ns, counts, fillable, strict=True)
    )
    report = QualityReport(
        bar_s=bar_s,
        rows_in=len(candles),
        rows_out=len(governed),
        off_grid_rows=off_grid,
        off_grid_max_offset_s=max_offset_s,
        snap_collisions=collisions,
        gaps=gaps,
        outliers=_outliers(
            governed.index, log_returns, scores, flagged, clipped if policy.clip_outliers else None
        ),
        outlier_z=policy.outlier_z,
        mad_log_return=mad,
    )
    return governed, report


def _score_returns(
    governed: pd.DataFrame, bar_ns: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]:
    """Robust z of consecutive-bar log returns; NaN for the first bar and after a gap."""
    close = governed["close"].to_numpy(dtype=np.float64)
    log_returns = np.full(close.shape, np.nan)
    if close.size > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            log_returns[1:] = np.diff(np.log(close))
        consecutive = np.diff(_ns(pd.DatetimeIndex(governed.index))) == bar_ns
        log_returns[1:][~consecutive] = np.nan
    scores, mad = robust_z(log_returns)
    return log_returns, scores, mad


def _clip(
    log_returns: npt.NDArray[np.float64], mad: float, policy: QualityPolicy
) -> npt.NDArray[np.float64]:
    """Returns clipped to ``median +- outlier_z * 1.4826 * MAD`` (unchanged when MAD is 0)."""
    finite = log_returns[np.isfinite(log_returns)]
    if mad == 0.0 or finite.size == 0:
        return log_returns
    median = float(np.median(finite))
    half_width = policy.outlier_z * MAD_TO_SIGMA * mad
    return np.clip(log_returns, median - half_width, median + half_width)


def _outliers(
    index: pd.Index[Any],
    log_returns: npt.NDArray[np.float64],
    scores: npt.NDArray[np.float64],
    flagged: npt.NDArray[np.bool_],
    clipped: npt.NDArray[np.float64] | None,
) -> tuple[Outlier, ...]:
    positions = np.flatnonzero(flagged)
    times = pd.DatetimeIndex(index)[positions]
    return tuple(
        Outlier(
            timestamp=t.to_pydatetime(),
            log_return=float(log_returns[p]),
            robust_z=float(scores[p]),
            clipped_to=None if clipped is None else float(clipped[p]),
        )
        for t, p in zip(times, positions, strict=True)
    )


def govern_funding(
    funding: pd.Series[float], bar_s: int = 8 * 3600, *, source: str = "funding"
) -> tuple[pd.Series[float], QualityReport]:
    """Snap funding settlements to the grid and report gaps (never filled).

    A missing settlement is not invented: forward-filling a funding rate would
    charge or pay a settlement that did not happen. No outlier scoring either:
    funding rates are levels, not returns. Mark prices take this path too (a
    level series checked against the last price by :func:`cross_check`).
    """
    frame, off_grid, max_offset_s, collisions = _snap_frame(funding.to_frame(), bar_s, source)
    first_ns, counts = find_gaps(_ns(pd.DatetimeIndex(frame.index)), bar_s)
    bar_ns = bar_s * NS_PER_S
    gaps = tuple(
        Gap(_ts(int(f)), _ts(int(f) + (int(n) - 1) * bar_ns), int(n), False)
        for f, n in zip(first_ns, counts, strict=True)
    )
    series = frame.iloc[:, 0]
    report = QualityReport(
        bar_s=bar_s,
        rows_in=len(funding),
        rows_out=len(series),
        off_grid_rows=off_grid,
        off_grid_max_offset_s=max_offset_s,
        snap_collisions=collisions,
        gaps=gaps,
    )
    return series, report


def _ts(ns: int) -> datetime:
    return pd.Timestamp(ns, unit="ns", tz="UTC").to_pydatetime()


SHOWN_OUTSIDE = 5
"""How many of the bars outside a cross-check's tolerance are listed by time."""


@dataclass(frozen=True)
class CrossCheck:
    """Two sources of one price compared bar by bar, in bps of the reference."""

    name: str
    tolerance_bps: float
    compared: int
    outside: int
    worst_bps: float | None = None
    worst_at: datetime | None = None
    first_outside: tuple[datetime, ...] = ()
    median_bps: float | None = None

    @property
    def ok(self) -> bool:
        return self.outside == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "tolerance_bps": self.tolerance_bps,
            "compared": self.compared,
            "outside": self.outside,
            "median_bps": self.median_bps,
            "worst_bps": self.worst_bps,
            "worst_at": self.worst_at,
            "first_outside": list(self.first_outside),
        }


def cross_check(
    price: pd.Series[float], reference: pd.Series[float], tolerance_bps: float, name: str
) -> CrossCheck:
    """``price`` against ``reference`` on their common timestamps (vectorised).

    The deviation of a bar is ``(price / reference - 1) * 1e4`` bps; a bar is
    outside when ``|deviation| > tolerance_bps``. Bars only one source has are not
    compared (their gaps are each dataset's own report).
    """
    left, right = price.align(reference, join="inner")
    deviation = (left.to_numpy(dtype=np.float64) / right.to_numpy(dtype=np.float64) - 1.0) * 1e4
    if deviation.size == 0:
        return CrossCheck(name, tolerance_bps, 0, 0)
    size = np.abs(deviation)
    outside = np.flatnonzero(size > tolerance_bps)
    worst = int(np.argmax(size))
    index = pd.DatetimeIndex(left.index)
    return CrossCheck(
        name=name,
        tolerance_bps=tolerance_bps,
        compared=int(deviation.size),
        outside=int(outside.size),
        worst_bps=float(deviation[worst]),
        worst_at=index[worst].to_pydatetime(),
        first_outside=tuple(t.to_pydatetime() for t in index[outside[:SHOWN_OUTSIDE]]),
        median_bps=float(np.median(deviation)),
    )


@dataclass(frozen=True)
class UniversePolicy:
    """Seed 001's universe rules, declared up front (config/data.yaml ``universe``)."""

    min_avg_daily_volume_usd: float = 0.0
    min_history_days: float = 0.0
    volume_window_days: int = 30

    @classmethod
    def of(cls, rules: UniverseConfig) -> UniversePolicy:
        """The policy config/data.yaml's ``universe`` section declares."""
        return cls(
            min_avg_daily_volume_usd=rules.min_avg_daily_volume_usd,
            min_history_days=rules.min_history_days,
            volume_window_days=rules.volume_window_days,
        )


@dataclass(frozen=True)
class UniverseMember:
    """One symbol's liquidity and age, and whether the universe takes it (and why not)."""

    symbol: str
    avg_daily_volume_usd: float
    history_days: float
    reasons_out: tuple[str, ...] = ()

    @property
    def included(self) -> bool:
        return not self.reasons_out

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "included": self.included,
            "avg_daily_volume_usd": self.avg_daily_volume_usd,
            "history_days": self.history_days,
            "reasons_out": list(self.reasons_out),
        }


def universe_member(symbol: str, candles: pd.DataFrame, policy: UniversePolicy) -> UniverseMember:
    """``symbol``'s average daily dollar volume (``volume x close`` summed per UTC day,
    averaged over the last ``volume_window_days`` days of its data) and history length
    (first to last bar), judged against the policy."""
    index = pd.DatetimeIndex(candles.index)
    if index.empty:
        return UniverseMember(symbol, 0.0, 0.0, ("no bars",))
    history_days = float((index[-1] - index[0]) / pd.Timedelta(days=1))
    recent = index >= index[-1] - pd.Timedelta(days=policy.volume_window_days)
    dollars = (candles["volume"] * candles["close"])[recent]
    days = max(1.0, min(float(policy.volume_window_days), history_days))
    average = float(dollars.sum()) / days
    reasons = []
    if average < policy.min_avg_daily_volume_usd:
        reasons.append(
            f"average daily volume ${average:,.0f} < ${policy.min_avg_daily_volume_usd:,.0f} "
            f"(last {policy.volume_window_days} days)"
        )
    if history_days < policy.min_history_days:
        reasons.append(f"history {history_days:.1f} days < {policy.min_history_days:g} days")
    return UniverseMember(symbol, average, history_days, tuple(reasons))
