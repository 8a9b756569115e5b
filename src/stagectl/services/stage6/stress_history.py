"""Stress Lab's historical scenarios: the worst moves found in the data, replayed.

For each symbol, window length and direction of config/stress_scenarios.yaml
(``historical``), the worst move in the closed bars before ``now`` (after the first
``baseline_days`` of data) becomes a scenario: its price moves are every symbol's
return over that window, and Market Intel replayed at the window's end gives the
stressed spread and liquidity (``hist_<symbol>_<window>_<direction>``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from stagectl.errors import InputError
from stagectl.services.stage6 import market_intel
from stagectl.services.stage6.stress_verdict import PreparedScenario, iso_utc

if TYPE_CHECKING:
    from stagectl.config.core import CoreConfig
    from stagectl.config.stress_scenarios import StressScenariosConfig
    from stagectl.domain.market_intel import MarketIntelSnapshot, SymbolMarketData


def window_label(hours: float) -> str:
    """24 -> '24h', 168 -> '7d', 36 -> '36h'."""
    if hours >= 48 and hours % 24 == 0:
        return f"{int(hours // 24)}d"
    return f"{int(hours)}h" if float(hours).is_integer() else f"{hours}h"


def historical_name(symbol: str, hours: float, direction: str) -> str:
    return f"hist_{symbol.lower()}_{window_label(hours)}_{direction}"


def historical_scenarios(
    names: set[str],
    cfg: StressScenariosConfig,
    core: CoreConfig,
    market: market_intel.MarketData,
    now: datetime,
    current: dict[str, MarketIntelSnapshot],
) -> list[PreparedScenario]:
    """Worst moves per symbol, window and direction, searched in the closed bars before
    ``now`` from the first ``baseline_days`` of data on (each window keeps its baseline)."""
    import pandas as pd

    windows = market_intel.windows_from(core)
    out = []
    for symbol, data in market.symbols.items():
        wanted = [
            (h, d)
            for h in cfg.historical.windows_hours
            for d in cfg.historical.directions
            if historical_name(symbol, h, d) in names
        ]
        if not wanted:
            continue
        candles = data.candles
        index = pd.DatetimeIndex(candles.index)
        bar = pd.Timedelta(index[1:].to_series().diff().median()) if len(index) > 2 else None
        bar = bar if bar is not None and not pd.isna(bar) else pd.Timedelta(hours=1)
        start = index[0] + pd.Timedelta(days=windows.baseline_days)
        usable = candles[(index >= start) & (index + bar <= pd.Timestamp(now))]
        for hours, direction in wanted:
            out.append(
                _historical_one(symbol, hours, direction, usable, market, windows, bar, current)
            )
    return out


def _historical_one(
    symbol: str,
    hours: float,
    direction: str,
    usable: Any,
    market: market_intel.MarketData,
    windows: Any,
    bar: Any,
    current: dict[str, MarketIntelSnapshot],
) -> PreparedScenario:
    from stagectl.domain.market_intel import (
        InsufficientDataError,
        aggregate_snapshots,
        compute_snapshot,
    )
    from stagectl.domain.stress import Scenario, Shock, worst_moves

    name = historical_name(symbol, hours, direction)
    label = window_label(hours)
    try:
        move = worst_moves(usable, hours, direction="down" if direction == "down" else "up")
    except ValueError as error:
        raise InputError(
            f"{name}: the data before --now is too short for a {label} window "
            f"after the {windows.baseline_days:g}-day baseline ({error})",
            where=market.source,
        ) from None
    hist_windows = replace(windows, lookback_hours=hours)
    snapshots: dict[str, MarketIntelSnapshot] = {}
    first = move.end - timedelta(hours=hours + 24, days=hist_windows.baseline_days)
    for other, data in market.symbols.items():
        try:
            snapshots[other] = compute_snapshot(
                other, _slice(data, first, move.end), move.end, hist_windows
            )
        except InsufficientDataError:
            continue
    moves = {s: _move_pct(market.symbols[s].candles, move.start, move.end, bar) for s in current}
    market_scenarios = {
        s: Scenario(
            name,
            (
                Shock("spread_bps", "set", snap.spread_bps),
                Shock("liquidity_drop_pct", "set", snap.liquidity_drop_pct),
            ),
        )
        for s, snap in snapshots.items()
    }
    for s in current:
        market_scenarios.setdefault(s, Scenario(name))
    verb = "fall" if direction == "down" else "rise"
    start, end = iso_utc(move.start), iso_utc(move.end)
    description = (
        f"Worst {label} {verb} of {symbol} in the data: {move.return_pct:+.2f} % "
        f"from {start} to {end}; Market Intel replayed at {end} with a {label} window."
    )
    window = {
        "symbol": symbol,
        "hours": hours,
        "direction": direction,
        "start": start,
        "end": end,
        "return_pct": move.return_pct,
        "symbols_in_window": sorted(snapshots),
    }
    scenario = Scenario(name, (), price_moves_pct=moves, description=description)
    aggregate = aggregate_snapshots(list(snapshots.values()), hist_windows)
    return PreparedScenario(
        name, "historical", description, scenario, snapshots, aggregate, market_scenarios, window
    )


def _slice(data: SymbolMarketData, start: datetime, end: datetime) -> SymbolMarketData:
    """The rows in [start, end] of every series: the window and its baseline, so each
    historical snapshot works on a few hundred bars instead of the whole history."""
    import pandas as pd

    from stagectl.domain.market_intel import SymbolMarketData

    lo, hi = pd.Timestamp(start), pd.Timestamp(end)

    def cut(frame: Any) -> Any:
        return None if frame is None else frame.loc[lo:hi]

    return SymbolMarketData(cut(data.candles), cut(data.funding), cut(data.spot_candles))


def _move_pct(candles: Any, start: datetime, end: datetime, bar: Any) -> float:
    """close(bar closing at end) / close(bar closing at start) - 1, in percent (0 if absent)."""
    import math

    import pandas as pd

    close = candles["close"]
    first = close.asof(pd.Timestamp(start) - bar)
    last = close.asof(pd.Timestamp(end) - bar)
    if not (isinstance(first, float) and isinstance(last, float)) or math.isnan(first + last):
        return 0.0
    return (last / first - 1.0) * 100.0
