"""The live risk guard, incremental: run-live's in-loop evaluation (docs/risk-guard.md,
"In the loop").

Cron's ``stagectl risk-guard`` reads the run's whole history at each evaluation
(:mod:`stagectl.services.guard.history`). The loop evaluates every hour for as long as
the run lasts, so :class:`IncrementalGuard` keeps what it read and asks the state only
for the rows recorded since its last evaluation: by row id, so a row stamped earlier than
the rows already read (a bar records its fills, stamped at its open, at its close) is
still seen. It puts them on the same hourly grid as ``history.build_inputs`` (the last
snapshot of each hour, carried forward; fills, funding and signal checks summed per
hour, with :mod:`stagectl.services.guard.rows`' definitions) and advances
``domain.risk_stream``, whose indicators and decisions are the batch's.

The grid has two parts:

- **committed** hours, before the hour being judged (``lag`` hours back, 1 at first):
  pushed once into the carried :class:`~stagectl.domain.risk_stream.GuardStream`;
- the **tail**, the hours since: kept as rows and pushed each evaluation into a copy of
  the carried stream, since their rows may still change (the hour being judged gets
  its bar's fills, funding and signal checks an hour later).

A row for an hour already committed (a funding payment reported a day late), a
snapshot older than the last one read, an earlier ``now``, or a change of the run's bar
(the median snapshot spacing, which places the run's start): the guard starts over from
the run's rows (one full read, as cron does at each evaluation) and widens the lag so
that such a row lands in the tail next time (``rebuilds`` counts them). Rows stamped
after ``now`` wait for the evaluation they belong to.

A bar costs a few indexed reads of the new rows, one pushed hour and one copied stream,
whatever the run's length. The decision goes through ``history.decision_dict`` and the
recording through ``history.record``, as cron's (``services.guard.live.conclude``).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stagectl.config.risk_guard import RiskGuardConfig
from stagectl.domain.risk_stream import GuardStream, HourRow, divide
from stagectl.domain.types import Event, Fill, FundingPayment, Mode
from stagectl.errors import InputError
from stagectl.services.guard import rows
from stagectl.services.guard.history import History, decision_dict
from stagectl.services.guard.live import STALE_AFTER
from stagectl.state.db import StateDB
from stagectl.state.equity import EquitySnapshot

HOUR = timedelta(hours=1)
RECENT_FILLS = timedelta(hours=24)
"""The fills an incident lists (``history.record``)."""


@dataclass
class _Hour:
    """One hour of the grid not committed yet: its snapshots and summed flows."""

    snapshots: list[EquitySnapshot] = field(default_factory=list)
    notional: float = 0.0
    trades: Counter[str] = field(default_factory=Counter)
    funding: float = 0.0
    slippage: float = 0.0
    priced: float = 0.0
    checks: float = 0.0
    mismatches: float = 0.0


@dataclass
class _Rows:
    """Rows read from the state, each with its row id."""

    snapshots: list[tuple[int, EquitySnapshot]] = field(default_factory=list)
    fills: list[tuple[int, Fill, float | None]] = field(default_factory=list)
    funding: list[tuple[int, FundingPayment]] = field(default_factory=list)
    checks: list[tuple[int, Event]] = field(default_factory=list)
    initial_equity: float | None = None


class _StartOver(Exception):
    """The carried state cannot absorb a row (see the module docstring)."""

    def __init__(self, hour: datetime | None = None) -> None:
        super().__init__()
        self.hour = hour


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


@dataclass(frozen=True)
class Evaluation:
    """The decision at ``now`` as cron's ``risk-guard --now`` makes it, what was read
    (cron's ``data``), and what ``history.record`` needs: the last snapshot and the fills
    of the last 24 hours."""

    decision: dict[str, Any]
    data: dict[str, Any]
    history: History


class IncrementalGuard:
    """The live guard of one run, evaluated again and again as the run goes on."""

    def __init__(self, config: RiskGuardConfig, *, run_id: str, mode: Mode) -> None:
        self.config, self.run_id, self.mode = config, run_id, mode
        self.sleeves = list(config.weekly.target_weights_pct)
        self.weights = {s: config.weekly.target_weights_pct[s] / 100.0 for s in self.sleeves}
        self.lag = 1
        """Hours behind the judged hour that are committed: 1 until a row came later."""
        self.rebuilds = 0
        self._reset()

    def _reset(self) -> None:
        self.cursor = {"snapshots": 0, "fills": 0, "funding": 0, "checks": 0}
        self.started = False
        self.now: datetime | None = None
        self.pending = _Rows()
        self.initial_equity: float | None = None
        self.first: datetime | None = None
        self.last: EquitySnapshot | None = None
        self.snapshot_count = 0
        self.snapshot_hours = 0
        self.spacings: Counter[timedelta] = Counter()
        self.bar: timedelta | None = None
        self.opened: datetime | None = None
        self.read_start = self.grid_start = datetime.min
        self.hours: dict[datetime, _Hour] = {}
        self.stream = GuardStream(
            self.sleeves,
            self.config.rules,
            daily_utc=self.config.schedule.daily_utc,
            near_threshold_pct=self.config.near_threshold_pct,
        )
        self.carry = _Carry(self.sleeves)
        self.committed: datetime | None = None
        self.priced_seen = self.compared_seen = False
        self.first_fills: dict[str, tuple[datetime, int, str]] = {}
        self.recent: deque[tuple[datetime, int, Fill, float | None]] = deque()
        self.counts: Counter[str] = Counter()

    def evaluate(self, db: StateDB, now: datetime) -> Evaluation:
        """The decision at ``now``: the new rows read, the grid advanced, the rules judged.
        Raises InputError when the run has no equity snapshot by ``now`` (as cron)."""
        fresh = self._read(db)
        try:
            return self._advance(fresh, now)
        except _StartOver as late:
            if late.hour is not None:
                behind = (rows.hour_of(now) - late.hour) // HOUR + 1
                self.lag = max(self.lag, behind)
            self.rebuilds += 1
        except BaseException:
            self._reset()  # rows read but not taken: the next evaluation reads them again
            raise
        self._reset()
        try:
            return self._advance(self._read(db), now)
        except BaseException:
            self._reset()
            raise

    def _read(self, db: StateDB) -> _Rows:
        """Every row recorded since the last read; nothing is kept until all are read."""
        from stagectl.services.guard import evidence, history
        from stagectl.state import equity, journal, ledger

        cursor, run = self.cursor, self.run_id
        fills = ledger.fills_after(db, run, cursor["fills"])
        read = _Rows(
            snapshots=equity.snapshots_after(db, run, cursor["snapshots"]),
            fills=[(i, f, evidence.reference_price(db, f)) for i, f in fills],
            funding=ledger.funding_after(db, run, cursor["funding"]),
            checks=journal.events_after(
                db, run_id=run, event_type=evidence.SIGNAL_CHECK_EVENT, after_id=cursor["checks"]
            ),
            initial_equity=None if self.started else history._initial_equity(db, run),
        )
        for name, got in (
            ("snapshots", read.snapshots),
            ("fills", read.fills),
            ("funding", read.funding),
            ("checks", read.checks),
        ):
            if got:
                cursor[name] = max(cursor[name], max(row[0] for row in got))
        return read

    def _advance(self, fresh: _Rows, now: datetime) -> Evaluation:
        if self.now is not None and now < self.now:
            raise _StartOver()
        if not self.started:
            self.initial_equity, self.started = fresh.initial_equity, True
        self.now = now
        due = self._due(fresh, now)
        for _, snapshot in sorted(due.snapshots, key=lambda row: row[1].ts):
            self._add_snapshot(snapshot)
        if self.last is None:
            raise InputError(
                f"no equity snapshots at or before {now.isoformat()} in run {self.run_id}"
            )
        self._place()
        for i, fill, signal in sorted(due.fills, key=lambda row: (row[1].ts, row[0])):
            self._add_fill(i, fill, signal)
        for _, payment in due.funding:
            self._add_funding(payment)
        for _, event in due.checks:
            self._add_check(event)
        end = rows.hour_of(self.last.ts)
        if self.committed is not None and end <= self.committed:
            raise _StartOver(end)
        self._commit_until(end - self.lag * HOUR)
        return self._judge(now, end)

    def _due(self, fresh: _Rows, now: datetime) -> _Rows:
        """The rows stamped at or before ``now``; the later ones wait in ``pending``, in
        time order, so a row is taken in the evaluation its time reaches."""
        due = _Rows()
        for name in ("snapshots", "fills", "funding", "checks"):
            waiting = getattr(self.pending, name)
            if getattr(fresh, name):
                waiting = sorted([*waiting, *getattr(fresh, name)], key=_row_ts)
            cut = bisect_right(waiting, now, key=_row_ts)
            setattr(due, name, waiting[:cut])
            setattr(self.pending, name, waiting[cut:])
        return due

    def _hour(self, hour: datetime) -> _Hour:
        if self.committed is not None and hour <= self.committed:
            raise _StartOver(hour)
        return self.hours.setdefault(hour, _Hour())

    def _add_snapshot(self, snapshot: EquitySnapshot) -> None:
        hour = rows.hour_of(snapshot.ts)
        previous = self.last
        if previous is not None and snapshot.ts <= previous.ts:
            raise _StartOver(hour)
        self._hour(hour).snapshots.append(snapshot)
        if previous is None:
            self.first = snapshot.ts
        else:
            self.spacings[snapshot.ts - previous.ts] += 1
        if previous is None or rows.hour_of(previous.ts) != hour:
            self.snapshot_hours += 1
        self.last = snapshot
        self.snapshot_count += 1

    def _place(self) -> None:
        """The run's start (its first bar's open) and the grid's first hour, once."""
        bar = _median(self.spacings)
        if self.bar is not None:
            if bar != self.bar:
                raise _StartOver()
            return
        assert self.first is not None
        self.bar = bar
        self.opened = self.first - bar
        self.read_start = min(self.first - HOUR, self.opened)
        initial = self.initial_equity
        if initial is None:
            self.grid_start = rows.hour_of(self.first)
            return
        self.grid_start = rows.hour_of(self.opened)
        start = EquitySnapshot(
            self.run_id,
            self.opened,
            initial,
            sleeves={
                s: {"equity": w * initial, "position": 0.0, "state": 0}
                for s, w in self.weights.items()
            },
        )
        self._hour(self.grid_start).snapshots.insert(0, start)
        if self.grid_start != rows.hour_of(self.first):
            self.snapshot_hours += 1

    def _add_fill(self, row_id: int, fill: Fill, signal: float | None) -> None:
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
        if hour < self.grid_start:
            return
        bucket = self._hour(hour)
        bucket.notional += abs(float(fill.qty) * float(fill.price))
        if signal is not None:
            bucket.slippage += rows.slippage_bps(fill, signal)
            bucket.priced += 1.0

    def _count_trade(self, first: tuple[datetime, int, str], change: int) -> None:
        hour, symbol = rows.hour_of(first[0]), first[2]
        if hour >= self.grid_start and symbol in self.weights:
            self._hour(hour).trades[symbol] += change

    def _add_funding(self, payment: FundingPayment) -> None:
        if payment.ts < self.read_start:
            return
        self.counts["funding"] += 1
        hour = rows.hour_of(payment.ts)
        if hour >= self.grid_start:
            self._hour(hour).funding += float(payment.paid)

    def _add_check(self, event: Event) -> None:
        if event.ts < self.read_start:
            return
        self.counts["checks"] += 1
        mismatch = rows.signal_mismatch(event.payload)
        hour = rows.hour_of(event.ts)
        if mismatch is not None and hour >= self.grid_start:
            bucket = self._hour(hour)
            bucket.checks += 1.0
            bucket.mismatches += mismatch

    def _row(self, hour: datetime, carry: _Carry) -> HourRow:
        """The grid's row of ``hour``: its snapshots taken into ``carry``, its flows."""
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

    def _commit_until(self, target: datetime) -> None:
        hour = self.grid_start if self.committed is None else self.committed + HOUR
        while hour <= target:
            self.stream.push(self._row(hour, self.carry))
            bucket = self.hours.pop(hour, None)
            if bucket is not None:
                self.priced_seen |= bucket.priced > 0
                self.compared_seen |= bucket.checks > 0
            self.committed = hour
            hour += HOUR
        horizon = self.now - RECENT_FILLS if self.now is not None else None
        while horizon is not None and self.recent and self.recent[0][0] < horizon:
            self.recent.popleft()

    def _judge(self, now: datetime, end: datetime) -> Evaluation:
        stream, carry = self.stream.copy(), self.carry.copy()
        priced, compared = self.priced_seen, self.compared_seen
        hour = self.grid_start if self.committed is None else self.committed + HOUR
        row = None
        while hour <= end:
            row = self._row(hour, carry)
            stream.push(row)
            priced |= row.slippage_fills > 0
            compared |= row.signal_checks > 0
            hour += HOUR
        assert row is not None and self.last is not None
        table, _ = stream.decide()
        hours = (end - self.grid_start) // HOUR + 1
        data = {
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
                sleeve_equity_missing=any(math.isnan(v) for v in row.sleeve_equity),
                state_missing=any(math.isnan(v) for v in row.position_state),
                no_priced_fills=not priced,
                no_signal_checks=not compared,
            ),
        }
        decision = decision_dict(table, self.config, data, now=now, stale_after=STALE_AFTER)
        recent = sorted(
            (r for r in self.recent if now - RECENT_FILLS <= r[0]), key=lambda r: (r[0], r[1])
        )
        history = History(
            run_id=self.run_id,
            mode=self.mode,
            snapshots=[self.last],
            fills=[r[2] for r in recent],
            reference_prices=[r[3] for r in recent],
            funding=[],
            signal_checks=[],
            initial_equity=self.initial_equity,
        )
        return Evaluation(decision, data, history)


def _row_ts(row: tuple[Any, ...]) -> datetime:
    stamped: datetime = row[1].ts
    return stamped


def _median(spacings: Counter[timedelta]) -> timedelta:
    """The median snapshot spacing (one hour with none), as ``history`` takes it: the
    middle spacing, or the mean of the two middle ones."""
    total = sum(spacings.values())
    if total == 0:
        return HOUR
    middle: list[timedelta] = []
    seen = 0
    for spacing, count in sorted(spacings.items()):
        seen += count
        while len(middle) < 2 and seen > ((total - 1) // 2, total // 2)[len(middle)]:
            middle.append(spacing)
        if len(middle) == 2:
            break
    low, high = middle
    return low if low == high else (low + high) / 2
