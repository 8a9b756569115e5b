"""Circuit breakers in run-live (docs/run-live.md, "Circuit breakers").

At the open of bar k the loop knows the run's equity snapshots up to t[k] (the close of
bar k-1). From them it derives the run's own per-bar returns and closed trades and gives
the multiplier ``domain.breakers.apply_breakers`` (the function ``backtest --breakers``
uses) would give the last of them:

- return stamped t[j+1] = snapshot equity at t[j+1] / the one before - 1 (the first one
  against the run's initial equity): the return of bar j, stamped at its close, which
  is the open where the backtest stamps it;
- a trade is a maximal run of snapshots where a sleeve's book has the same non-zero
  sign; it closes at the snapshot of its last bar (the open where the position is
  closed, as the backtest's ``exit_time``) and is listed once a later snapshot shows the
  book flat or flipped. Its pnl is the sleeve equity at its last bar minus the sleeve
  equity before its first bar (the exit's fee falls in the next bar);
- the multiplier for bar k is the value at t[k] of ``apply_breakers`` on that history:
  it uses returns up to t[k-1] and trades closed before t[k], the backtest's timing
  (``m[k]`` scales the position held over bar k).

Each firing is recorded once as a ``BREAKER_FIRED`` event (payload: time, breaker,
value, threshold, as ``backtest --record``).

The breakers are evaluated incrementally (``RunFeed``): each step reads only the
snapshots it has not seen and feeds their returns, and the trades they close, to a
``domain.breaker_state.BreakerTracker``, whose multipliers and firings equal
``apply_breakers``'s on the whole history bit for bit (tests/unit/test_breaker_state.py).
A step costs the same on day 1 and on day 365, and memory is bounded by the breakers'
windows. A start or a resume reads the run's snapshots once and replays them; firings
recorded before (``BreakerState.load``) are not recorded again. ``run_history`` derives
the same returns and trades from all the snapshots at once (the reference the tests use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from stagectl.domain.breaker_state import BreakerTracker
from stagectl.domain.breakers import BreakerSettings, Firing
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
    feed: RunFeed | None = None
    """The run's breakers as of its last snapshot read (None: not read yet)."""

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


class RunFeed:
    """The run's snapshots, read once each in time order, fed to a ``BreakerTracker``.

    Keeps what the next snapshot needs and nothing more: the last equity and stamp, each
    sleeve's book, the tracker, and the multiplier it gave the last snapshot. Each
    snapshot gives one return and the trades it shows closed (at the snapshot before,
    in sleeve order): the same floats, in the same order, as ``run_history``.
    """

    def __init__(
        self, initial_equity: float, sleeve_start_usd: dict[str, float], settings: BreakerSettings
    ) -> None:
        self.initial_equity = initial_equity
        self.sleeve_start_usd = sleeve_start_usd
        self.tracker = BreakerTracker(settings)
        self.multiplier = 1.0
        """The multiplier at the last snapshot read (1 before any)."""
        self.last_ts: datetime | None = None
        self._last_stamp: pd.Timestamp | None = None
        self._last_equity = initial_equity
        self._books = {s: _SleeveBook(0, start, start) for s, start in sleeve_start_usd.items()}

    def fits(
        self, initial_equity: float, sleeve_start_usd: dict[str, float], bar_ts: datetime
    ) -> bool:
        """Same run inputs, and no snapshot read is after ``bar_ts`` (else: rebuild)."""
        return (
            initial_equity == self.initial_equity
            and sleeve_start_usd == self.sleeve_start_usd
            and (self.last_ts is None or self.last_ts <= bar_ts)
        )

    def extend(self, db: StateDB, run_id: str, bar_ts: datetime) -> list[Firing]:
        """Feed the snapshots after the last one read, up to and including ``bar_ts``."""
        end = bar_ts + timedelta(microseconds=1)
        firings: list[Firing] = []
        for row in snapshots(db, run_id, start=self.last_ts, end=end):
            if self.last_ts is not None and row.ts <= self.last_ts:
                continue
            firings += self._feed(row)
        return firings

    def _feed(self, row: Any) -> list[Firing]:
        stamp = pd.Timestamp(row.ts)
        equity = float(row.equity)
        bar_return = equity / self._last_equity - 1.0
        self._last_equity = equity
        firings: list[Firing] = []
        for symbol, start_usd in self.sleeve_start_usd.items():
            sleeve = row.sleeves.get(symbol, {})
            state = int(sleeve.get("state", 0))
            value = float(sleeve.get("equity", start_usd))
            book = self._books[symbol]
            if book.state != 0 and state != book.state and self._last_stamp is not None:
                closed = self.tracker.close_trade(self._last_stamp, book.equity - book.entry_before)
                firings += [] if closed is None else [closed]
            if state != 0 and state != book.state:
                book.entry_before = book.equity
            book.state, book.equity = state, value
        bar = self.tracker.add_bar(stamp, bar_return)
        self.multiplier = bar.multiplier
        self._last_stamp = stamp
        self.last_ts = row.ts
        return firings + list(bar.firings)


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
    feed = state.feed
    if feed is None or not feed.fits(initial_equity, sleeve_start_usd, bar_ts):
        feed = state.feed = RunFeed(initial_equity, dict(sleeve_start_usd), state.settings)
    fired = feed.extend(db, run_id, bar_ts)
    events = []
    for firing in sorted(fired, key=lambda f: (f.time, f.breaker)):
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
    return feed.multiplier, events
