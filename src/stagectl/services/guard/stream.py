"""The live risk guard, incremental: run-live's in-loop evaluation (docs/risk-guard.md,
"In the loop").

Cron's ``stagectl risk-guard`` reads the run's whole history at each evaluation
(:mod:`stagectl.services.guard.history`). The loop evaluates every hour for as long as
the run lasts, so :class:`IncrementalGuard` keeps what it read and asks the state only
for the rows recorded since its last evaluation: by row id, so a row stamped earlier than
the rows already read (a bar records its fills, stamped at its open, at its close) is
still seen. It puts them on the same hourly grid as ``history.build_inputs``
(:mod:`stagectl.services.guard.grid`) and advances ``domain.risk_stream``, whose
indicators and decisions are the batch's.

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

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stagectl.config.risk_guard import RiskGuardConfig
from stagectl.domain.risk_stream import GuardStream
from stagectl.domain.types import Event, Fill, FundingPayment, Mode
from stagectl.errors import InputError
from stagectl.services.guard import rows
from stagectl.services.guard.grid import HOUR, HourlyGrid, Late
from stagectl.services.guard.history import History, decision_dict
from stagectl.services.guard.live import STALE_AFTER
from stagectl.state.db import StateDB
from stagectl.state.equity import EquitySnapshot

KINDS = ("snapshots", "fills", "funding", "checks")


@dataclass
class _Rows:
    """Rows read from the state, each with its row id first."""

    snapshots: list[tuple[int, EquitySnapshot]] = field(default_factory=list)
    fills: list[tuple[int, Fill, float | None]] = field(default_factory=list)
    funding: list[tuple[int, FundingPayment]] = field(default_factory=list)
    checks: list[tuple[int, Event]] = field(default_factory=list)
    initial_equity: float | None = None


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
        pct = config.weekly.target_weights_pct
        self.weights = {sleeve: pct[sleeve] / 100.0 for sleeve in pct}
        self.lag = 1
        """Hours behind the judged hour that are committed: 1 until a row came later."""
        self.rebuilds = 0
        self._reset()

    def _reset(self) -> None:
        self.cursor = dict.fromkeys(KINDS, 0)
        self.started = False
        self.now: datetime | None = None
        self.pending = _Rows()
        self.grid = HourlyGrid(self.run_id, self.weights, None)
        self.stream = GuardStream(
            list(self.weights),
            self.config.rules,
            daily_utc=self.config.schedule.daily_utc,
            near_threshold_pct=self.config.near_threshold_pct,
        )

    def evaluate(self, db: StateDB, now: datetime) -> Evaluation:
        """The decision at ``now``: the new rows read, the grid advanced, the rules judged.
        Raises InputError when the run has no equity snapshot by ``now`` (as cron)."""
        fresh = self._read(db)
        try:
            return self._advance(fresh, now)
        except Late as late:
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
        from stagectl.services.guard import evidence
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
            initial_equity=None if self.started else evidence.initial_equity(db, run),
        )
        for name in KINDS:
            got: list[tuple[Any, ...]] = getattr(read, name)
            if got:
                cursor[name] = max(cursor[name], max(row[0] for row in got))
        return read

    def _advance(self, fresh: _Rows, now: datetime) -> Evaluation:
        if self.now is not None and now < self.now:
            raise Late()
        if not self.started:
            self.grid.initial_equity, self.started = fresh.initial_equity, True
        self.now = now
        due, grid = self._due(fresh, now), self.grid
        for _, snapshot in due.snapshots:
            grid.add_snapshot(snapshot)
        if grid.last is None:
            raise InputError(
                f"no equity snapshots at or before {now.isoformat()} in run {self.run_id}"
            )
        grid.place()
        for i, fill, signal in sorted(due.fills, key=lambda row: (row[1].ts, row[0])):
            grid.add_fill(i, fill, signal)
        for _, payment in due.funding:
            grid.add_funding(payment)
        for _, event in due.checks:
            grid.add_check(event)
        end = rows.hour_of(grid.last.ts)
        if grid.committed is not None and end <= grid.committed:
            raise Late(end)
        while grid.next_hour <= end - self.lag * HOUR:
            self.stream.push(grid.commit())
        return self._judge(now, end)

    def _due(self, fresh: _Rows, now: datetime) -> _Rows:
        """The rows stamped at or before ``now``, in time order; the later ones wait in
        ``pending``, so a row is taken in the evaluation its time reaches."""
        due = _Rows()
        for name in KINDS:
            waiting = getattr(self.pending, name)
            if getattr(fresh, name):
                waiting = sorted([*waiting, *getattr(fresh, name)], key=_row_ts)
            cut = bisect_right(waiting, now, key=_row_ts)
            setattr(due, name, waiting[:cut])
            setattr(self.pending, name, waiting[cut:])
        return due

    def _judge(self, now: datetime, end: datetime) -> Evaluation:
        """The decision at the grid's last hour: the tail pushed into a copy."""
        grid, stream = self.grid, self.stream.copy()
        tail = grid.tail(end)
        for row in tail:
            stream.push(row)
        table, _ = stream.decide()
        data = grid.data(now, end, tail)
        decision = decision_dict(table, self.config, data, now=now, stale_after=STALE_AFTER)
        recent = grid.recent_fills(now)
        assert grid.last is not None
        history = History(
            run_id=self.run_id,
            mode=self.mode,
            snapshots=[grid.last],
            fills=[r[2] for r in recent],
            reference_prices=[r[3] for r in recent],
            funding=[],
            signal_checks=[],
            initial_equity=grid.initial_equity,
        )
        return Evaluation(decision, data, history)


def _row_ts(row: tuple[Any, ...]) -> datetime:
    stamped: datetime = row[1].ts
    return stamped
