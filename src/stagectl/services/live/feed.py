"""Market data and signals for run-live, one bar step at a time (docs/run-live.md, "Signals").

The targets come from ``strategy_run.build_sleeves`` (the backtest's exact path) and the
position held over bar k is ``held_positions(target, signal_delay)[k]``, as in
``run_backtest``. TSMOM and debounce are causal (bar t's target uses closes up to t),
so computing the targets once over the replay window gives the same values as
recomputing them at every bar; the live feed recomputes them on each new bar.

For step k the feed gives, per sleeve: bar k (open, high, low, close), the target
held over it, the decision price (close of bar k-1, known at the open of bar k), the
dollar volume of bar k-1 (impact participation) and the funding settlements in
``(t[k], t[k+1]]`` (paid on the position held over bar k).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stagectl.data.loaders import read_candles
from stagectl.domain.backtest import run_backtest
from stagectl.domain.costs import prior_bar_spread_bps
from stagectl.domain.performance import bar_minutes
from stagectl.domain.regimes import regime_labels
from stagectl.domain.strategies import held_positions
from stagectl.errors import InputError
from stagectl.exchange.paper import Bar
from stagectl.services.strategy.sleeves import build_sleeves

if TYPE_CHECKING:
    from stagectl.config.strategy import StrategyConfig


RECENT_BARS = 24
"""How many bars the router's persistence and average volume look back (a day of 1h)."""
FINE_TIMEFRAME = "1m"


def dec(value: float) -> Decimal:
    """A float price as the shortest Decimal that prints the same (``2184.03``)."""
    return Decimal(repr(float(value)))


@dataclass(frozen=True)
class SleeveBar:
    symbol: str
    weight: float
    bar: Bar
    held_target: float
    decision_price: Decimal
    prev_dollar_volume: Decimal
    funding: list[tuple[datetime, Decimal]] = field(default_factory=list)
    replay_position: float | None = None
    prev_spread_bps: float | None = None
    """Corwin-Schultz spread of bars k-2 and k-1 (``trade_costs``); None: the floor."""
    regime: str | None = None
    """The regime label of bar k-1 (``domain.regimes.regime_labels``); None: not known."""
    recent_signs: tuple[int, ...] = ()
    """The sign of the target held over each of the last ``RECENT_BARS`` bars up to this
    one (the execution router's signal persistence); empty: unknown."""
    avg_dollar_volume: Decimal | None = None
    """The average dollar volume of the last ``RECENT_BARS`` closed bars (None: unknown)."""
    fine: tuple[Bar, ...] = ()
    """The 1m bars inside this bar where the data has them (a slice is worked through
    them by the paper broker); empty: none."""


@dataclass(frozen=True)
class StepData:
    index: int
    ts: datetime
    close_ts: datetime
    sleeves: dict[str, SleeveBar]
    total: int | None = None
    """How many bars the run has (a replay's window); None: open-ended (live)."""


class ReplayFeed:
    """Bars of ``[start, end]`` from a data directory (None: the bundled sample)."""

    def __init__(
        self,
        config: StrategyConfig,
        data_dir: Path | None,
        start: datetime | None,
        end: datetime | None,
    ) -> None:
        specs, info = build_sleeves(config, data_dir, start, end)
        self.info = info
        self.step = timedelta(minutes=bar_minutes(config.timeframe))
        self.index = pd.DatetimeIndex(specs[0].open.index)
        delay = config.execution.signal_delay_bars
        replay = run_backtest(
            specs,
            fee_bps=config.costs.fee_bps,
            slippage_bps=config.costs.slippage_bps,
            initial_equity=config.initial_equity_usd,
            signal_delay=delay,
        )
        self.backtest_positions = replay.positions
        self._rows: dict[str, dict[str, Any]] = {}
        for spec in specs:
            frame = read_candles(spec.symbol, config.timeframe, data_dir=data_dir).frame
            where = frame.index.get_indexer(self.index)
            prev = np.maximum(where - 1, 0)
            closes = frame["close"].to_numpy(dtype=float)
            volumes = frame["volume"].to_numpy(dtype=float) * closes
            spreads = prior_bar_spread_bps(frame["high"].to_numpy(), frame["low"].to_numpy())
            regimes = regime_labels(frame, bar_minutes(config.timeframe))
            funding = spec.funding if spec.funding is not None else pd.Series(dtype=float)
            funding_index = pd.DatetimeIndex(funding.index)
            # per-bar values as Python lists: one bar reads a handful of scalars
            self._rows[spec.symbol] = {
                "weight": spec.weight,
                "open": frame["open"].to_numpy(dtype=float)[where].tolist(),
                "high": frame["high"].to_numpy(dtype=float)[where].tolist(),
                "low": frame["low"].to_numpy(dtype=float)[where].tolist(),
                "close": closes[where].tolist(),
                "prev_close": np.where(
                    where > 0, closes[prev], frame["open"].to_numpy()[where]
                ).tolist(),
                "prev_volume": np.where(where > 0, volumes[prev], volumes[where]).tolist(),
                "spread": spreads[where].tolist(),
                "regime": [
                    str(regimes[p]) if w > 0 else None
                    for w, p in zip(where.tolist(), prev.tolist(), strict=True)
                ],
                "held": held_positions(spec.target, delay).to_numpy(dtype=float).tolist(),
                "avg_volume": _trailing_mean(
                    np.where(where > 0, volumes[prev], volumes[where])
                ).tolist(),
                "fine": _fine_bars(spec.symbol, config.timeframe, data_dir),
                "replay": self.backtest_positions[spec.symbol].to_numpy(dtype=float).tolist(),
                "funding_ns": funding_index.as_unit("ns").asi8,
                "funding": _settlements(funding),
            }
        self.sleeve_symbols = frozenset(self._rows)
        self.fine_symbols = frozenset(s for s, row in self._rows.items() if row["fine"] is not None)
        """The sleeves whose data has 1m bars (the paper broker works their slices there)."""
        self._open_ns = self.index.as_unit("ns").asi8
        self._opens: list[datetime] = [stamp.to_pydatetime() for stamp in self.index]
        self._step_ns = int(self.step.total_seconds() * 1e9)

    @property
    def bars(self) -> int:
        return len(self.index)

    def first_index_at_or_after(self, ts: datetime) -> int:
        return int(self.index.searchsorted(pd.Timestamp(ts), side="left"))

    def steps(self, first: int = 0) -> Iterator[StepData]:
        for k in range(first, len(self.index)):
            yield self.at(k)

    def at(self, k: int) -> StepData:
        ts = self._opens[k]
        close_ts = ts + self.step
        sleeves: dict[str, SleeveBar] = {}
        open_ns = int(self._open_ns[k])
        for symbol, row in self._rows.items():
            first, last = np.searchsorted(
                row["funding_ns"], [open_ns, open_ns + self._step_ns], side="right"
            )
            sleeves[symbol] = SleeveBar(
                symbol=symbol,
                weight=row["weight"],
                bar=Bar(
                    ts,
                    close_ts,
                    dec(row["open"][k]),
                    dec(row["high"][k]),
                    dec(row["low"][k]),
                    dec(row["close"][k]),
                ),
                held_target=row["held"][k],
                decision_price=dec(row["prev_close"][k]),
                prev_dollar_volume=dec(row["prev_volume"][k]),
                funding=row["funding"][first:last],
                replay_position=row["replay"][k],
                prev_spread_bps=row["spread"][k],
                regime=row["regime"][k],
                recent_signs=tuple(
                    int(np.sign(t)) for t in row["held"][max(0, k - RECENT_BARS + 1) : k + 1]
                ),
                avg_dollar_volume=dec(row["avg_volume"][k]),
                fine=_fine_in(row["fine"], open_ns, open_ns + self._step_ns),
            )
        return StepData(k, ts, close_ts, sleeves, total=len(self.index))


def _trailing_mean(values: np.ndarray) -> np.ndarray:
    """The mean of each value and the ``RECENT_BARS - 1`` before it (fewer at the start)."""
    return pd.Series(values).rolling(RECENT_BARS, min_periods=1).mean().to_numpy(dtype=float)


Fine = tuple[pd.DataFrame, np.ndarray]


def _fine_bars(symbol: str, timeframe: str, data_dir: Path | None) -> Fine | None:
    """The symbol's 1m candles and their open times in ns, where the data directory has
    them (None: it has none)."""
    if timeframe == FINE_TIMEFRAME:
        return None
    try:
        frame = read_candles(symbol, FINE_TIMEFRAME, data_dir=data_dir).frame
    except InputError:
        return None
    return frame, pd.DatetimeIndex(frame.index).as_unit("ns").asi8


def _fine_in(fine: Fine | None, start_ns: int, end_ns: int) -> tuple[Bar, ...]:
    """The 1m bars opening in ``[start, end)``."""
    if fine is None:
        return ()
    frame, stamps = fine
    first, last = np.searchsorted(stamps, [start_ns, end_ns], side="left")
    minute = timedelta(minutes=1)
    out = []
    window = frame.iloc[first:last]
    columns = [window[c].to_numpy(dtype=float).tolist() for c in ("open", "high", "low", "close")]
    for i, ts in enumerate(pd.DatetimeIndex(window.index)):
        opened = ts.to_pydatetime()
        o, h, lo, c = (dec(col[i]) for col in columns)
        out.append(Bar(opened, opened + minute, o, h, lo, c))
    return tuple(out)


def _settlements(rates: pd.Series) -> list[tuple[datetime, Decimal]]:
    """Every funding settlement as (time, rate); a bar takes those in ``(open, close]``."""
    index = pd.DatetimeIndex(rates.index)
    return [
        (stamp.to_pydatetime(), dec(rate))
        for stamp, rate in zip(index, rates.to_numpy(dtype=float), strict=True)
    ]


def data_span(config: Any, data_dir: Path | None) -> tuple[datetime, datetime]:
    """The first and the last bar every sleeve has: a paper window must lie within them."""
    frames = [
        read_candles(s.symbol, config.timeframe, data_dir=data_dir).frame for s in config.sleeves
    ]
    first: datetime = max(frame.index[0] for frame in frames).to_pydatetime()
    last: datetime = min(frame.index[-1] for frame in frames).to_pydatetime()
    return first, last
