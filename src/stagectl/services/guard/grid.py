"""The live guard's hourly grid, built a few rows at a time: what
``history.build_inputs`` makes of a run's rows, for the incremental guard
(``services.guard.stream``).

The grid is the run's hours from its first bar's open (or its first snapshot, when the run
recorded no initial equity) to the hour of its last snapshot. Each hour holds the last
snapshot of the hour, every column carried forward from the last value that was not NaN;
the turnover, trades, funding, slippage and signal checks of its rows
(``services.guard.rows``' definitions); the hours of :class:`HourlyGrid` are those not yet
committed, kept as rows until :meth:`HourlyGrid.commit` turns one into its final
:class:`~stagectl.domain.risk_stream.HourRow`.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stagectl.domain.risk_stream import HourRow, divide
from stagectl.domain.run_clock import ONE_BAR_DEFAULT
from stagectl.domain.types import Event, Fill, FundingPayment
from stagectl.services.guard import rows
from stagectl.state.equity import EquitySnapshot

HOUR = timedelta(hours=1)
RECENT_FILLS = timedelta(hours=24)
"""The fills an incident lists (``history.record``)."""


class Late(Exception):
    """A row the grid cannot take any more: for an hour already committed (``hour``), a
    snapshot older than the last one, or a new bar spacing (``hour`` None)."""

    def __init__(self, hour: datetime | None = None) -> None:
        super().__init__()
        self.hour = hour


@dataclass
class _Hour:
    """One hour not committed yet: its snapshots and summed flows."""

    snapshots: list[EquitySnapshot] = field(default_factory=list)
    notional: float = 0.0
    trades: Counter[str] = field(default_factory=Counter)
    funding: float = 0.0
    slippage: float = 0.0
    priced: float = 0.0
    checks: float = 0.0
    mismatches: float = 0.0


class _Carry:
    """Each snapshot column's last value that was not NaN: the grid's forward fill."""

    def __init__(self, sleeves: list[str]) -> None:
        self.sleeves = sleeves
        self.values: dict[str, float] = {}

    def copy(self) -> _Carry:
        twin = _Carry(self.sleeves)
        twin.values = dict(self.values)
        return twin

    def take(self, snapshot: EquitySnapshot) -> None:
        columns = {"equity": float(snapshot.equity)}
        for sleeve in self.sleeves:
            for key in ("equity", "position", "state"):
                columns[f"{sleeve}:{key}"] = rows.sleeve_value(snapshot, sleeve, key)
        for column, value in columns.items():
            if not math.isnan(value):
                self.values[column] = value

    def get(self, column: str) -> float:
        return self.values.get(column, math.nan)

    def state(self, sleeve: str) -> float:
        """The sleeve's state, else the sign of its position (``build_inputs``)."""
        state = self.get(f"{sleeve}:state")
        if not math.isnan(state):
            return state
        position = self.get(f"{sleeve}:position")
        if math.isnan(position) or position == 0:
            return position if math.isnan(position) else 0.0
        return math.copysign(1.0, position)


class HourlyGrid:
    """One run's grid; see the module docstring. Rows arrive in any order within the
    hours not committed; snapshots arrive in time order."""

    def __init__(
        self, run_id: str, weights: dict[str, float], initial_equity: float | None
    ) -> None:
        self.run_id, self.weights, self.initial_equity = run_id, weights, initial_equity
        self.sleeves = list(weights)
        self.first: datetime | None = None
        self.last: EquitySnapshot | None = None
        self.snapshot_count = 0
        self.snapshot_hours = 0
        self.spacings: Counter[timedelta] = Counter()
        self.bar: timedelta | None = None
        self.opened: datetime | None = None
        self.read_start = self.start = datetime.min
        self.hours: dict[datetime, _Hour] = {}
        self.carry = _Carry(self.sleeves)
        self.committed: datetime | None = None
        self.priced_seen = self.compared_seen = False
        self.first_fills: dict[str, tuple[datetime, int, str]] = {}
        self.recent: deque[tuple[datetime, int, Fill, float | None]] = deque()
        self.counts: Counter[str] = Counter()

    @property
    def next_hour(self) -> datetime:
        """The first hour not committed."""
        return self.start if self.committed is None else self.committed + HOUR

    def _hour(self, hour: datetime) -> _Hour:
        if self.committed is not None and hour <= self.committed:
            raise Late(hour)
        return self.hours.setdefault(hour, _Hour())

    def add_snapshot(self, snapshot: EquitySnapshot) -> None:
        hour = rows.hour_of(snapshot.ts)
        previous = self.last
        if previous is not None and snapshot.ts <= previous.ts:
            raise Late(hour)
        self._hour(hour).snapshots.append(snapshot)
        if previous is None:
            self.first = snapshot.ts
        else:
            self.spacings[snapshot.ts - previous.ts] += 1
        if previous is None or rows.hour_of(previous.ts) != hour:
            self.snapshot_hours += 1
        self.last = snapshot
        self.snapshot_count += 1

    def place(self) -> None:
        """The run's start (its first bar's open: one bar, the median snapshot spacing,
        before its first snapshot), the first row read and the grid's first hour; once.
        A later change of the spacing raises :class:`Late`."""
        bar = _median(self.spacings)
        if self.bar is not None:
            if bar != self.bar:
                raise Late()
            return
        assert self.first is not None
        self.bar = bar
        self.opened = self.first - bar
        self.read_start = min(self.first - HOUR, self.opened)
        initial = self.initial_equity
        if initial is None:
            self.start = rows.hour_of(self.first)
            return
        self.start = rows.hour_of(self.opened)
        opening = EquitySnapshot(
            self.run_id,
            self.opened,
            initial,
            sleeves={
                s: {"equity": w * initial, "position": 0.0, "state": 0}
                for s, w in self.weights.items()
            },
        )
        self._hour(self.start).snapshots.insert(0, opening)
        if self.start != rows.hour_of(self.first):
            self.snapshot_hours += 1

    def add_fill(self, row_id: int, fill: Fill, signal: float | None) -> None:
        if fill.ts < self.read_start:
            return
        self.counts["fills"] += 1
        self.recent.append((fill.ts, row_id, fill, signal))
        key = rows.order_key(fill)
        known = self.first_fills.get(key)
        if known is None or (fill.ts, row_id) < known[:2]:
            if known is not None:
                self._count_trade(known, -1)
            self.first_fills[key] = (fill.ts, row_id, fill.symbol)
            self._count_trade(self.first_fills[key], 1)
        hour = rows.hour_of(fill.ts)
        if hour < self.start:
            return
        bucket = self._hour(hour)
        bucket.notional += abs(float(fill.qty) * float(fill.price))
        if signal is not None:
            bucket.slippage += rows.slippage_bps(fill, signal)
            bucket.priced += 1.0

    def _count_trade(self, first: tuple[datetime, int, str], change: int) -> None:
        """An order counts once, in the hour of its first fill."""
        hour, symbol = rows.hour_of(first[0]), first[2]
        if hour >= self.start and symbol in self.weights:
            self._hour(hour).trades[symbol] += change

    def add_funding(self, payment: FundingPayment) -> None:
        if payment.ts < self.read_start:
            return
        self.counts["funding"] += 1
        hour = rows.hour_of(payment.ts)
        if hour >= self.start:
            self._hour(hour).funding += float(payment.paid)

    def add_check(self, event: Event) -> None:
        if event.ts < self.read_start:
            return
        self.counts["checks"] += 1
        mismatch = rows.signal_mismatch(event.payload)
        hour = rows.hour_of(event.ts)
        if mismatch is not None and hour >= self.start:
            bucket = self._hour(hour)
            bucket.checks += 1.0
            bucket.mismatches += mismatch

    def _row(self, hour: datetime, carry: _Carry) -> HourRow:
        """The row of ``hour``: its snapshots taken into ``carry``, its flows."""
        bucket = self.hours.get(hour) or _Hour()
        for snapshot in bucket.snapshots:
            carry.take(snapshot)
        equity = carry.get("equity")
        turnover = divide(bucket.notional, equity)
        return HourRow(
            hour=hour,
            equity=equity,
            sleeve_equity=tuple(carry.get(f"{s}:equity") for s in self.sleeves),
            position_state=tuple(carry.state(s) for s in self.sleeves),
            turnover=0.0 if math.isnan(turnover) else turnover,
            trades=tuple(float(bucket.trades[s]) for s in self.sleeves),
            funding_paid=bucket.funding,
            slippage_bps_sum=bucket.slippage,
            slippage_fills=bucket.priced,
            signal_checks=bucket.checks,
            signal_mismatches=bucket.mismatches,
        )

    def commit(self) -> HourRow:
        """The next hour's final row; the hour can take no more rows."""
        hour = self.next_hour
        row = self._row(hour, self.carry)
        self.hours.pop(hour, None)
        self.priced_seen |= row.slippage_fills > 0
        self.compared_seen |= row.signal_checks > 0
        self.committed = hour
        return row

    def tail(self, end: datetime) -> list[HourRow]:
        """The rows of the hours not committed, up to ``end``, as they stand now."""
        carry, hour, out = self.carry.copy(), self.next_hour, []
        while hour <= end:
            out.append(self._row(hour, carry))
            hour += HOUR
        return out

    def recent_fills(self, now: datetime) -> list[tuple[datetime, int, Fill, float | None]]:
        """The fills of the last 24 hours (``history.record``'s), in time order; older
        ones are forgotten."""
        horizon = now - RECENT_FILLS
        while self.recent and self.recent[0][0] < horizon:
            self.recent.popleft()
        return sorted((r for r in self.recent if horizon <= r[0]), key=lambda r: (r[0], r[1]))

    def data(self, now: datetime, end: datetime, tail: list[HourRow]) -> dict[str, Any]:
        """What ``build_inputs`` says it read (its ``data``), for the grid up to ``end``."""
        assert self.last is not None
        last_row = tail[-1]
        hours = (end - self.start) // HOUR + 1
        return {
            "run_id": self.run_id,
            "run_start": None if self.initial_equity is None else self.opened,
            "initial_equity": self.initial_equity,
            "first_snapshot": self.first,
            "last_snapshot": self.last.ts,
            "snapshots": self.snapshot_count,
            "hours": hours,
            "missing_hours": hours - self.snapshot_hours,
            "last_snapshot_age_min": round((now - self.last.ts).total_seconds() / 60.0, 1),
            "fills": self.counts["fills"],
            "funding_payments": self.counts["funding"],
            "signal_checks": self.counts["checks"],
            "unavailable": rows.unavailable(
                sleeve_equity_missing=any(math.isnan(v) for v in last_row.sleeve_equity),
                state_missing=any(math.isnan(v) for v in last_row.position_state),
                no_priced_fills=not (self.priced_seen or any(r.slippage_fills for r in tail)),
                no_signal_checks=not (self.compared_seen or any(r.signal_checks for r in tail)),
            ),
        }


def _median(spacings: Counter[timedelta]) -> timedelta:
    """The run's bar as ``domain.run_clock.first_bar_open`` takes it, from the counted
    spacings instead of the list of them: the median spacing in seconds (the mean of the
    two middle ones for an even count), one hour with none."""
    total = sum(spacings.values())
    if total == 0:
        return ONE_BAR_DEFAULT
    middle: list[float] = []
    seen = 0
    for spacing, count in sorted(spacings.items()):
        seen += count
        while len(middle) < 2 and seen > ((total - 1) // 2, total // 2)[len(middle)]:
            middle.append(spacing.total_seconds())
    return timedelta(seconds=statistics.median(middle))
