"""Stage6 Market Intelligence: per-symbol market-state metrics and their aggregate.

Pure and vectorised: candles, funding and ``now`` in, :class:`MarketIntelSnapshot` out.
Windows (see :class:`MarketIntelWindows`, docs/market-intel.md):

* the *window* holds the closed bars whose open time is in ``[now - lookback, now)``
  and whose close time (open + bar interval) is ``<= now``;
* the *baseline* holds the closed bars whose open time is in
  ``[now - lookback - baseline, now - lookback)`` (it ends where the window starts, so
  a shock inside the window does not dilute its own baseline).

Conventions: prices are perp closes unless stated; log returns between adjacent bars
only (a return spanning a data gap is dropped); volatility uses ddof=1 and is annualised
with sqrt(bars per 365-day year) because crypto trades 24/7; bps = 1e-4.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

AGGREGATE_SYMBOL = "AGGREGATE"
MINUTES_PER_YEAR = 365.0 * 24.0 * 60.0
_NS_PER_MIN = 60_000_000_000
_NS_PER_MS = 1_000_000
_CS_K = 3.0 - 2.0 * math.sqrt(2.0)


class MissingSymbolError(ValueError):
    """A mandatory Market Intel symbol has no data; ``symbols`` names the missing ones."""

    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = tuple(symbols)
        super().__init__(f"mandatory symbol(s) missing from the input: {', '.join(self.symbols)}")


class InsufficientDataError(ValueError):
    """The candles do not cover the window or the baseline well enough to compute a metric."""


@dataclass(frozen=True)
class MarketIntelWindows:
    """Windows and limits of the computation (defaults: our choice, see the docs)."""

    lookback_hours: float = 24.0
    baseline_days: float = 30.0
    staleness_limit_min: float = 90.0
    spread_floor_bps: float = 1.0
    default_weight: float = 1.15
    stale_weight: float = 0.0


@dataclass(frozen=True)
class SymbolMarketData:
    """One symbol's inputs: perp candles, 8h funding rates (fractions), spot candles."""

    candles: pd.DataFrame
    funding: pd.Series | None = None
    spot_candles: pd.DataFrame | None = None


@dataclass(frozen=True)
class MarketIntelSnapshot:
    """Market state of one symbol (or of the aggregate row) at ``as_of``."""

    symbol: str
    as_of: datetime
    window_start: datetime
    bars: int
    last_bar_open: datetime
    liquidity_usd: float
    liquidity_baseline_usd: float
    liquidity_drop_pct: float
    spread_bps: float
    realized_vol_ann: float
    realized_vol_baseline_ann: float
    volatility_change_pct: float
    funding_latest_bps: float | None
    funding_mean_bps: float | None
    dispersion_bps: float | None
    sentiment: float
    efficiency_ratio: float
    return_pct: float
    dollar_volume_usd: float
    latency_ms: float
    blackout_min: float
    fresh: bool
    weight: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (datetimes as ISO-8601 strings)."""
        row = asdict(self)
        for key in ("as_of", "window_start", "last_bar_open"):
            row[key] = row[key].isoformat()
        return row


@dataclass(frozen=True)
class MarketIntelReport:
    """Per-symbol snapshots (input order) and the aggregate row."""

    snapshots: tuple[MarketIntelSnapshot, ...]
    aggregate: MarketIntelSnapshot

    def rows(self) -> tuple[MarketIntelSnapshot, ...]:
        return (*self.snapshots, self.aggregate)


def require_symbols(available: Iterable[str], required: Sequence[str]) -> None:
    """Raise MissingSymbolError naming every required symbol absent from ``available``."""
    present = set(available)
    missing = [symbol for symbol in required if symbol not in present]
    if missing:
        raise MissingSymbolError(missing)


def corwin_schultz_spreads(high: npt.ArrayLike, low: npt.ArrayLike) -> FloatArray:
    """Corwin-Schultz (2012) spread of each pair of consecutive bars, as a fraction.

    beta = ln(H_t/L_t)^2 + ln(H_t+1/L_t+1)^2; gamma = ln(max(H_t, H_t+1)/min(L_t, L_t+1))^2;
    alpha = (sqrt(2 beta) - sqrt(beta)) / (3 - 2 sqrt 2) - sqrt(gamma / (3 - 2 sqrt 2));
    S = 2 (e^alpha - 1) / (1 + e^alpha). Raw values: negative estimates are kept here.
    """
    log_high = np.log(np.asarray(high, dtype=np.float64))
    log_low = np.log(np.asarray(low, dtype=np.float64))
    range_sq = (log_high - log_low) ** 2
    beta = range_sq[1:] + range_sq[:-1]
    gamma = (np.maximum(log_high[1:], log_high[:-1]) - np.minimum(log_low[1:], log_low[:-1])) ** 2
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / _CS_K - np.sqrt(gamma / _CS_K)
    return np.asarray(2.0 * (np.exp(alpha) - 1.0) / (1.0 + np.exp(alpha)), dtype=np.float64)


def corwin_schultz_spread_bps(
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    *,
    pair_mask: npt.ArrayLike | None = None,
    floor_bps: float = 1.0,
) -> float:
    """Mean of the two-bar estimates with negatives set to 0, floored at ``floor_bps``.

    ``pair_mask`` (length n-1) selects the pairs to use (adjacent bars only).
    """
    spreads = corwin_schultz_spreads(high, low)
    if pair_mask is not None:
        spreads = spreads[np.asarray(pair_mask, dtype=np.bool_)]
    if spreads.size == 0:
        raise InsufficientDataError("the spread estimate needs two adjacent bars")
    return max(float(np.mean(np.clip(spreads, 0.0, None))) * 1e4, floor_bps)


def annualised_volatility(log_returns: FloatArray, bar_minutes: float) -> float:
    """std(log returns, ddof=1) * sqrt(minutes per 365-day year / bar minutes)."""
    if log_returns.size < 2:
        raise InsufficientDataError("volatility needs at least two returns")
    return float(np.std(log_returns, ddof=1)) * math.sqrt(MINUTES_PER_YEAR / bar_minutes)


def longest_gap_min(
    bar_open_ns: npt.NDArray[np.int64], bar_ns: int, start_ns: int, end_ns: int
) -> float:
    """Longest stretch of [start, end] covered by no bar [open, open + bar), in minutes."""
    starts = np.concatenate(([start_ns], bar_open_ns + bar_ns))
    ends = np.concatenate((bar_open_ns, [end_ns]))
    return float(np.clip(ends - starts, 0, None).max()) / _NS_PER_MIN


def sentiment_index(
    open_: npt.ArrayLike, close: npt.ArrayLike, dollar_volume: npt.ArrayLike
) -> float:
    """Dollar-volume-weighted share of up bars: sum(w * up) / sum(w), in [0, 1].

    up = 1 when close > open, 0.5 when equal, 0 when below; w = close * volume.
    With no traded volume the index is the neutral 0.5.
    """
    open_arr = np.asarray(open_, dtype=np.float64)
    close_arr = np.asarray(close, dtype=np.float64)
    weights = np.asarray(dollar_volume, dtype=np.float64)
    up = np.where(close_arr > open_arr, 1.0, np.where(close_arr == open_arr, 0.5, 0.0))
    total = float(weights.sum())
    return 0.5 if total <= 0.0 else float((up * weights).sum() / total)


def efficiency_ratio(prices: npt.ArrayLike) -> float:
    """Kaufman efficiency ratio |ln p_last - ln p_first| / sum |diff ln p| in [0, 1]."""
    log_prices = np.log(np.asarray(prices, dtype=np.float64))
    path = float(np.abs(np.diff(log_prices)).sum())
    return 0.0 if path == 0.0 else abs(float(log_prices[-1] - log_prices[0])) / path


def _ns(value: datetime | pd.Timestamp) -> int:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    return int(stamp.tz_convert("UTC").as_unit("ns").value)


def _open_ns(frame: pd.DataFrame) -> npt.NDArray[np.int64]:
    index = pd.DatetimeIndex(frame.index)
    if index.tz is None:
        raise ValueError("candle index must be timezone-aware (UTC)")
    return np.asarray(index.as_unit("ns").asi8, dtype=np.int64)


def _bar_ns(open_ns: npt.NDArray[np.int64]) -> int:
    if open_ns.size < 2:
        raise InsufficientDataError("at least two candles are needed to infer the bar interval")
    return int(np.median(np.diff(open_ns)))


def _to_datetime(ns: int) -> datetime:
    return pd.Timestamp(ns, unit="ns", tz="UTC").to_pydatetime()


def _log_returns(close: FloatArray, open_ns: npt.NDArray[np.int64], bar_ns: int) -> FloatArray:
    adjacent = np.diff(open_ns) == bar_ns
    return np.asarray(np.diff(np.log(close))[adjacent], dtype=np.float64)


def _funding_bps(
    funding: pd.Series | None, start_ns: int, now_ns: int
) -> tuple[float | None, float | None]:
    if funding is None or funding.empty:
        return None, None
    stamps = np.asarray(pd.DatetimeIndex(funding.index).as_unit("ns").asi8, dtype=np.int64)
    rates = np.asarray(funding.to_numpy(dtype=np.float64), dtype=np.float64) * 1e4
    settled = stamps <= now_ns
    if not settled.any():
        return None, None
    latest = float(rates[settled][-1])
    in_window = settled & (stamps > start_ns)
    mean = float(rates[in_window].mean()) if in_window.any() else latest
    return latest, mean


def _dispersion_bps(
    perp: pd.DataFrame, spot: pd.DataFrame | None, start_ns: int, now_ns: int, bar_ns: int
) -> float | None:
    """Mean absolute perp-vs-spot basis |ln(perp close / spot close)| * 1e4 on common bars."""
    if spot is None or spot.empty:
        return None
    spot_ns = _open_ns(spot)
    keep = (spot_ns >= start_ns) & (spot_ns + bar_ns <= now_ns)
    spot_close = pd.Series(spot["close"].to_numpy(dtype=np.float64)[keep], index=spot_ns[keep])
    perp_close = pd.Series(perp["close"].to_numpy(dtype=np.float64), index=_open_ns(perp))
    joined = pd.concat([perp_close, spot_close], axis=1, join="inner").to_numpy(np.float64)
    if joined.shape[0] == 0:
        return None
    return float(np.abs(np.log(joined[:, 0] / joined[:, 1])).mean() * 1e4)


def compute_snapshot(
    symbol: str,
    data: SymbolMarketData,
    now: datetime,
    windows: MarketIntelWindows = MarketIntelWindows(),
) -> MarketIntelSnapshot:
    """All Market Intel metrics of one symbol at ``now`` (formulas: docs/market-intel.md)."""
    all_open_ns = _open_ns(data.candles)
    bar_ns = _bar_ns(all_open_ns)
    bar_min = bar_ns / _NS_PER_MIN
    now_ns = _ns(now)
    start_ns = now_ns - int(windows.lookback_hours * 60 * _NS_PER_MIN)
    base_start_ns = start_ns - int(windows.baseline_days * 24 * 60 * _NS_PER_MIN)
    closed = all_open_ns + bar_ns <= now_ns
    in_window = closed & (all_open_ns >= start_ns)
    in_base = (all_open_ns >= base_start_ns) & (all_open_ns < start_ns)
    if in_window.sum() < 3 or in_base.sum() < 3:
        raise InsufficientDataError(
            f"{symbol}: the window and the baseline need at least 3 closed bars each "
            f"(window {int(in_window.sum())}, baseline {int(in_base.sum())})"
        )
    frame = data.candles
    open_ = frame["open"].to_numpy(dtype=np.float64)
    high = frame["high"].to_numpy(dtype=np.float64)
    low = frame["low"].to_numpy(dtype=np.float64)
    close = frame["close"].to_numpy(dtype=np.float64)
    hourly_factor = 60.0 / bar_min
    dollar_volume = close * frame["volume"].to_numpy(dtype=np.float64)

    win_ns, base_ns = all_open_ns[in_window], all_open_ns[in_base]
    liquidity = float(np.median(dollar_volume[in_window])) * hourly_factor
    liquidity_base = float(np.median(dollar_volume[in_base])) * hourly_factor
    if liquidity_base <= 0.0:
        raise InsufficientDataError(f"{symbol}: no traded volume in the baseline")
    vol = annualised_volatility(_log_returns(close[in_window], win_ns, bar_ns), bar_min)
    vol_base = annualised_volatility(_log_returns(close[in_base], base_ns, bar_ns), bar_min)
    if vol_base <= 0.0:
        raise InsufficientDataError(f"{symbol}: the baseline volatility is zero")
    path = np.concatenate(([open_[in_window][0]], close[in_window]))
    latency_ms = max(0.0, (now_ns - int(all_open_ns[closed][-1]) - bar_ns) / _NS_PER_MS)
    funding_latest, funding_mean = _funding_bps(data.funding, start_ns, now_ns)
    fresh = latency_ms <= windows.staleness_limit_min * 60_000.0
    return MarketIntelSnapshot(
        symbol=symbol,
        as_of=_to_datetime(now_ns),
        window_start=_to_datetime(start_ns),
        bars=int(in_window.sum()),
        last_bar_open=_to_datetime(int(all_open_ns[closed][-1])),
        liquidity_usd=liquidity,
        liquidity_baseline_usd=liquidity_base,
        liquidity_drop_pct=(1.0 - liquidity / liquidity_base) * 100.0,
        spread_bps=corwin_schultz_spread_bps(
            high[in_window],
            low[in_window],
            pair_mask=np.diff(win_ns) == bar_ns,
            floor_bps=windows.spread_floor_bps,
        ),
        realized_vol_ann=vol,
        realized_vol_baseline_ann=vol_base,
        volatility_change_pct=(vol / vol_base - 1.0) * 100.0,
        funding_latest_bps=funding_latest,
        funding_mean_bps=funding_mean,
        dispersion_bps=_dispersion_bps(
            frame.loc[in_window], data.spot_candles, start_ns, now_ns, bar_ns
        ),
        sentiment=sentiment_index(open_[in_window], close[in_window], dollar_volume[in_window]),
        efficiency_ratio=efficiency_ratio(path),
        return_pct=(float(path[-1] / path[0]) - 1.0) * 100.0,
        dollar_volume_usd=float(dollar_volume[in_window].sum()),
        latency_ms=latency_ms,
        blackout_min=longest_gap_min(win_ns, bar_ns, start_ns, now_ns),
        fresh=fresh,
        weight=1.0 if fresh else windows.stale_weight,
    )


def _max_abs(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present, key=abs) if present else None


def aggregate_snapshots(
    snapshots: Sequence[MarketIntelSnapshot], windows: MarketIntelWindows = MarketIntelWindows()
) -> MarketIntelSnapshot:
    """The aggregate row: the worst symbol for each risk metric, sums for sizes.

    Worst = max for liquidity drop, spread, volatility, latency, blackout, dispersion;
    largest absolute value for volatility change and funding. Sentiment, efficiency ratio
    and return are dollar-volume-weighted means (sentiment then equals the pooled
    volume-weighted up-bar share across symbols). Fresh when every symbol is fresh; a fresh
    aggregate carries ``windows.default_weight`` (1.15), a stale one ``stale_weight``.
    """
    if not snapshots:
        raise ValueError("aggregate_snapshots needs at least one snapshot")
    dv = np.array([s.dollar_volume_usd for s in snapshots], dtype=np.float64)
    weights = dv / dv.sum() if dv.sum() > 0 else np.full(dv.size, 1.0 / dv.size)

    def weighted(values: Iterable[float]) -> float:
        return float(np.dot(weights, np.fromiter(values, dtype=np.float64)))

    fresh = all(s.fresh for s in snapshots)
    dispersions = [s.dispersion_bps for s in snapshots if s.dispersion_bps is not None]
    vol_change = _max_abs(s.volatility_change_pct for s in snapshots)
    return MarketIntelSnapshot(
        symbol=AGGREGATE_SYMBOL,
        as_of=snapshots[0].as_of,
        window_start=snapshots[0].window_start,
        bars=sum(s.bars for s in snapshots),
        last_bar_open=min(s.last_bar_open for s in snapshots),
        liquidity_usd=sum(s.liquidity_usd for s in snapshots),
        liquidity_baseline_usd=sum(s.liquidity_baseline_usd for s in snapshots),
        liquidity_drop_pct=max(s.liquidity_drop_pct for s in snapshots),
        spread_bps=max(s.spread_bps for s in snapshots),
        realized_vol_ann=max(s.realized_vol_ann for s in snapshots),
        realized_vol_baseline_ann=max(s.realized_vol_baseline_ann for s in snapshots),
        volatility_change_pct=0.0 if vol_change is None else vol_change,
        funding_latest_bps=_max_abs(s.funding_latest_bps for s in snapshots),
        funding_mean_bps=_max_abs(s.funding_mean_bps for s in snapshots),
        dispersion_bps=max(dispersions) if dispersions else None,
        sentiment=weighted(s.sentiment for s in snapshots),
        efficiency_ratio=weighted(s.efficiency_ratio for s in snapshots),
        return_pct=weighted(s.return_pct for s in snapshots),
        dollar_volume_usd=float(dv.sum()),
        latency_ms=max(s.latency_ms for s in snapshots),
        blackout_min=max(s.blackout_min for s in snapshots),
        fresh=fresh,
        weight=windows.default_weight if fresh else windows.stale_weight,
    )


def compute_market_intel(
    data: Mapping[str, SymbolMarketData],
    now: datetime,
    *,
    required_symbols: Sequence[str] = (),
    windows: MarketIntelWindows = MarketIntelWindows(),
) -> MarketIntelReport:
    """Snapshots for every symbol of ``data`` plus the aggregate row.

    Raises MissingSymbolError when a required symbol is absent (before any maths).
    """
    require_symbols(data.keys(), required_symbols)
    snapshots = tuple(compute_snapshot(sym, item, now, windows) for sym, item in data.items())
    return MarketIntelReport(snapshots=snapshots, aggregate=aggregate_snapshots(snapshots, windows))
