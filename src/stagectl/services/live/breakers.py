"""Circuit breakers in run-live (docs/run-live.md, "Circuit breakers").

At the open of bar k the loop knows the run's equity snapshots up to t[k] (the close of
bar k-1). From them it builds the run's own per-bar returns and closed trades and calls
``domain.breakers.apply_breakers`` (the function ``backtest --breakers`` uses):

- return stamped t[j+1] = snapshot equity at t[j+1] / the one before - 1 (the first one
  against the run's initial equity): the return of bar j, stamped at its close, which
  is the open where the backtest stamps it;
- a trade is a maximal run of snapshots where a sleeve's book has the same non-zero
  sign; it closes at the snapshot of its last bar (the open where the position is
  closed, as the backtest's ``exit_time``) and is listed once a later snapshot shows the
  book flat or flipped. Its pnl is the sleeve equity at its last bar minus the sleeve
  equity before its first bar (the exit's fee falls in the next bar);
- the multiplier for bar k is the last value of ``apply_breakers`` on that history:
  it uses returns up to t[k-1] and trades closed before t[k], the backtest's timing
  (``m[k]`` scales the position held over bar k).

Each firing is recorded once as a ``BREAKER_FIRED`` event (payload: time, breaker,
value, threshold, as ``backtest --record``).

The history is kept in memory across steps (``RunHistory``): each step reads only the
snapshots it has not seen and appends their returns and newly closed trades, so a start or
resume reads the run's snapshots once. The returns and trades are the same floats, in the
same order, as ``run_history`` on all the snapshots, so the multiplier is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from stagectl.domain.breakers import BreakerSettings, apply_breakers
from stagectl.domain.types import Event
from stagectl.services.research.breakers import firing_event
from stagectl.state import journal
from stagectl.state.db import StateDB
from stagectl.state.equity import snapshots

BREAKER_EVENT = "BREAKER_FIRED"


@dataclass
class BreakerState:
    """The settings and the firings already recorded (rebuilt from the events on resume)."""

    settings: BreakerSettings
    preset: str | None
    recorded: set[tuple[str, str]] = field(default_factory=set)
    history: RunHistory | None = None
    """The run's returns and closed trades so far (None: not read yet)."""

    @classmethod
    def load(
        cls, db: StateDB, run_id: str, settings: BreakerSettings, preset: str | None
    ) -> BreakerState:
        done = {
            (str(e.payload["breaker"]), str(e.payload["time"]))
            for e in journal.events(db, run_id=run_id, event_type=BREAKER_EVENT)
            if e.payload
        }
        return cls(settings, preset, done)


def run_history(
    rows: list[Any], initial_equity: float, sleeve_start_usd: dict[str, float]
) -> tuple[pd.Series, pd.Series]:
    """The run's per-bar returns (by snapshot time) and closed trades' pnl (by close time)."""
    if not rows:
        return pd.Series(dtype=float), pd.Series(dtype=float)
    index = pd.DatetimeIndex([pd.Timestamp(r.ts) for r in rows])
    equity = pd.Series([float(r.equity) for r in rows], index=index)
    returns = equity / equity.shift(1, fill_value=initial_equity) - 1.0
    closes: list[pd.Timestamp] = []
    pnls: list[float] = []
    for symbol, start_usd in sleeve_start_usd.items():
        states = [int(r.sleeves.get(symbol, {}).get("state", 0)) for r in rows]
        values = [float(r.sleeves.get(symbol, {}).get("equity", start_usd)) for r in rows]
        entry_before = start_usd
        for j, state in enumerate(states):
            before = states[j - 1] if j else 0
            if state != 0 and state != before:
                entry_before = values[j - 1] if j else start_usd
            after_is_known = j + 1 < len(states)
            if state != 0 and after_is_known and states[j + 1] != state:
                closes.append(index[j])
                pnls.append(values[j] - entry_before)
    trades = pd.Series(pnls, index=pd.DatetimeIndex(closes), dtype=float).sort_index(kind="stable")
    return returns, trades


@dataclass
class _SleeveBook:
    """One sleeve's last snapshot seen: its book sign, its equity and the entry's base."""

    state: int = 0
    equity: float = 0.0
    entry_before: float = 0.0


class RunHistory:
    """``run_history`` kept up to date one snapshot at a time (same floats, same order)."""

    def __init__(self, initial_equity: float, sleeve_start_usd: dict[str, float]) -> None:
        self.initial_equity = initial_equity
        self.sleeve_start_usd = sleeve_start_usd
        self.times: list[pd.Timestamp] = []
        self.returns: list[float] = []
        self.closes: list[pd.Timestamp] = []
        self.pnls: list[float] = []
        self.last_ts: datetime | None = None
        self._last_equity = initial_equity
        self._books = {s: _SleeveBook(0, start, start) for s, start in sleeve_start_usd.items()}

    def fits(
        self, initial_equity: float, sleeve_start_usd: dict[str, float], bar_ts: datetime
    ) -> bool:
        """Same run inputs, and no snapshot kept is after ``bar_ts`` (else: rebuild)."""
        return (
            initial_equity == self.initial_equity
            and sleeve_start_usd == self.sleeve_start_usd
            and (self.last_ts is None or self.last_ts <= bar_ts)
        )

    def extend(self, db: StateDB, run_id: str, bar_ts: datetime) -> None:
        """Append the snapshots after the last one seen, up to and including ``bar_ts``."""
        end = bar_ts + timedelta(microseconds=1)
        for row in snapshots(db, run_id, start=self.last_ts, end=end):
            if self.last_ts is not None and row.ts <= self.last_ts:
                continue
            self._append(row)

    def _append(self, row: Any) -> None:
        stamp = pd.Timestamp(row.ts)
        equity = float(row.equity)
        self.returns.append(equity / self._last_equity - 1.0)
        self._last_equity = equity
        for symbol, start_usd in self.sleeve_start_usd.items():
            sleeve = row.sleeves.get(symbol, {})
            state = int(sleeve.get("state", 0))
            value = float(sleeve.get("equity", start_usd))
            book = self._books[symbol]
            if book.state != 0 and state != book.state:
                self.closes.append(self.times[-1])
                self.pnls.append(book.equity - book.entry_before)
            if state != 0 and state != book.state:
                book.entry_before = book.equity
            book.state, book.equity = state, value
        self.times.append(stamp)
        self.last_ts = row.ts

    def series(self) -> tuple[pd.Series, pd.Series]:
        """The returns (by snapshot time) and closed trades' pnl (by close time)."""
        if not self.times:
            return pd.Series(dtype=float), pd.Series(dtype=float)
        returns = pd.Series(self.returns, index=pd.DatetimeIndex(self.times), dtype=float)
        trades = pd.Series(self.pnls, index=pd.DatetimeIndex(self.closes), dtype=float)
        return returns, trades


def evaluate(
    db: StateDB,
    run_id: str,
    state: BreakerState,
    *,
    initial_equity: float,
    sleeve_start_usd: dict[str, float],
    bar_ts: datetime,
) -> tuple[float, list[Event]]:
    """The breakers' size multiplier for the bar opening at ``bar_ts`` and the new firings."""
    history = state.history
    if history is None or not history.fits(initial_equity, sleeve_start_usd, bar_ts):
        history = state.history = RunHistory(initial_equity, dict(sleeve_start_usd))
    history.extend(db, run_id, bar_ts)
    returns, trades = history.series()
    if returns.empty:
        return 1.0, []
    result = apply_breakers(returns, trade_pnl=trades, settings=state.settings)
    events = []
    for firing in result.firings:
        payload = firing_event(firing)
        key = (str(payload["breaker"]), str(payload["time"]))
        if key in state.recorded:
            continue
        state.recorded.add(key)
        events.append(
            Event(
                ts=pd.Timestamp(firing.time).to_pydatetime(),
                event_type=BREAKER_EVENT,
                severity="MEDIUM",
                run_id=run_id,
                action=str(payload["breaker"]),
                message=f"circuit breaker {payload['breaker']} fired: value "
                f"{payload['value']:.6g}, threshold {payload['threshold']:.6g}",
                payload=payload,
            )
        )
    return float(result.multiplier.iloc[-1]), events
