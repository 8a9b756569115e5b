"""A run's own clock: where it starts and what time it is for a command that judges it.

Every command that judges a run (``risk-guard``, ``risk-guard --weekly``,
``paper-gate``, ``artifacts analyze``) takes its as-of time from :func:`as_of`:

- ``--now`` when given;
- the wall clock for a run still trading in real time (status ``running``, not a
  replay);
- else the run's last bar: the time of its last equity snapshot (stamped at the
  bar's close), for a replayed run (its clock is its data's, so today's wall clock
  says nothing about it) and for a finished one (completed, failed or aborted);
- the wall clock when the run has no snapshot yet.

A run replays when the parameters of its ``RUN_STARTED`` record carry a replay
window: ``replay_data`` (the data directory, null for the bundled sample), which
run-live records for every paper run; a live run records its ``exchange`` instead.

A run starts at its first bar's open: one bar (the median snapshot spacing, one hour
for a single snapshot) before its first snapshot (:func:`first_bar_open`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from statistics import median
from typing import Any, Literal

RUN_STARTED = "RUN_STARTED"
REPLAY_KEY = "replay_data"
ONE_BAR_DEFAULT = timedelta(hours=1)
DAY = timedelta(days=1)

Basis = Literal["--now", "wall clock", "last bar"]


@dataclass(frozen=True)
class RunClockFacts:
    """What the state says about a run's clock: its status (``running``, ``completed``,
    ``failed``, ``aborted``), the parameters of its ``RUN_STARTED`` record (None: none
    recorded) and its last bar (None: no snapshot yet)."""

    run_id: str
    status: str
    started: Mapping[str, Any] | None
    last_bar: datetime | None

    @property
    def replayed(self) -> bool:
        return self.started is not None and REPLAY_KEY in self.started


@dataclass(frozen=True)
class AsOf:
    """The time a command judges a run at, and why that time."""

    at: datetime
    basis: Basis
    reason: str

    def describe(self) -> str:
        """``as of the run's last bar 2026-05-16T10:00:00Z: replayed run``."""
        stamp = _iso(self.at)
        if self.basis == "last bar":
            return f"as of the run's last bar {stamp}: {self.reason}"
        if self.basis == "--now":
            return f"as of {stamp}: {self.reason}"
        return f"as of the wall clock {stamp}: {self.reason}"

    def to_dict(self) -> dict[str, str]:
        """The JSON form: ``at`` in ISO-8601 UTC (``Z``), ``basis`` and ``reason``."""
        return {"at": _iso(self.at), "basis": self.basis, "reason": self.reason}


def as_of(facts: RunClockFacts, *, now: datetime | None, wall: datetime) -> AsOf:
    """The as-of time of a judged run (module docstring): ``now``, else the run's clock."""
    if now is not None:
        return AsOf(now, "--now", "given by --now")
    if facts.last_bar is None:
        return AsOf(wall, "wall clock", "the run has no equity snapshot yet")
    if facts.replayed:
        state = " still replaying" if facts.status == "running" else ""
        return AsOf(facts.last_bar, "last bar", f"replayed run{state}")
    if facts.status != "running":
        return AsOf(facts.last_bar, "last bar", f"finished run ({facts.status})")
    return AsOf(wall, "wall clock", "run trading in real time")


def first_bar_open(stamps: Sequence[datetime]) -> datetime:
    """One bar before the first snapshot (stamped at the first bar's close); a bar is the
    median snapshot spacing, one hour for a single snapshot."""
    spacing_s = [(b - a).total_seconds() for a, b in pairwise(stamps)]
    bar = timedelta(seconds=median(spacing_s)) if spacing_s else ONE_BAR_DEFAULT
    return stamps[0] - bar


def covered_days(stamps: Sequence[datetime], *, start: datetime, end: datetime) -> float:
    """Days of the window ``[start, end]`` the run's bars cover, ``stamps`` being all its
    snapshots (bar closes, in time order): from the later of ``start`` and the run's first
    bar open to its last snapshot at or before ``end``; 0 when none is in the window.

    A 30-day run judged at its last bar covers 30.0 days: its first bar opens 30 days
    before its last bar closes.
    """
    inside = [s for s in stamps if start <= s <= end]
    if not inside:
        return 0.0
    begin = max(start, first_bar_open(stamps))
    return max(inside[-1] - begin, timedelta(0)) / DAY


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
