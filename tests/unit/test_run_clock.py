"""A run's own clock: its as-of time, its first bar's open and the days it covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stagectl.domain.run_clock import (
    RunClockFacts,
    as_of,
    covered_days,
    first_bar_open,
)

WALL = datetime(2026, 12, 3, 10, 30, tzinfo=UTC)
LAST_BAR = datetime(2026, 5, 16, 10, tzinfo=UTC)
REPLAY = {"replay_data": None, "start": "2026-04-16T10:00:00+00:00", "initial_equity": "1e4"}
LIVE = {"exchange": "binanceusdm", "start": "2026-12-01T00:00:00+00:00"}


def _hours(first: datetime, count: int) -> list[datetime]:
    return [first + timedelta(hours=h) for h in range(count)]


@pytest.mark.parametrize(
    ("status", "started", "basis", "reason"),
    [
        ("completed", REPLAY, "last bar", "replayed run"),
        ("running", REPLAY, "last bar", "replayed run still replaying"),
        ("aborted", REPLAY, "last bar", "replayed run"),
        ("completed", LIVE, "last bar", "finished run (completed)"),
        ("failed", None, "last bar", "finished run (failed)"),
        ("running", LIVE, "wall clock", "run trading in real time"),
        ("running", None, "wall clock", "run trading in real time"),
    ],
)
def test_a_run_is_judged_on_its_own_clock(
    status: str, started: dict[str, str] | None, basis: str, reason: str
) -> None:
    clock = as_of(RunClockFacts("r", status, started, LAST_BAR), now=None, wall=WALL)
    assert (clock.at, clock.basis, clock.reason) == (
        WALL if basis == "wall clock" else LAST_BAR,
        basis,
        reason,
    )


def test_now_overrides_the_runs_clock() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    clock = as_of(RunClockFacts("r", "completed", REPLAY, LAST_BAR), now=now, wall=WALL)
    assert (clock.at, clock.basis) == (now, "--now")


def test_a_run_without_a_snapshot_is_judged_on_the_wall_clock() -> None:
    clock = as_of(RunClockFacts("r", "completed", REPLAY, None), now=None, wall=WALL)
    assert (clock.at, clock.basis) == (WALL, "wall clock")


def test_the_as_of_says_which_time_and_why() -> None:
    clock = as_of(RunClockFacts("r", "completed", REPLAY, LAST_BAR), now=None, wall=WALL)
    assert clock.describe() == "as of the run's last bar 2026-05-16T10:00:00Z: replayed run"


def test_the_first_bar_opens_one_median_spacing_before_the_first_snapshot() -> None:
    first = datetime(2026, 1, 1, 1, tzinfo=UTC)
    stamps = [first, first + timedelta(hours=1), first + timedelta(hours=3)]
    assert first_bar_open(stamps) == first - timedelta(hours=1.5)
    assert first_bar_open([first]) == first - timedelta(hours=1)
    assert first_bar_open(_hours(first, 5)[::2]) == first - timedelta(hours=2)


def test_a_thirty_day_run_covers_thirty_days_at_its_last_bar() -> None:
    """720 hourly bars from 04-16 10:00: snapshots at 11:00 .. 05-16 10:00 (bar closes)."""
    stamps = _hours(datetime(2026, 4, 16, 11, tzinfo=UTC), 720)
    end = stamps[-1]
    assert end == LAST_BAR
    assert covered_days(stamps, start=end - timedelta(days=30), end=end) == pytest.approx(30.0)
    # one bar earlier the run covers 29 days and 23 hours: the gate cannot pass yet
    early = end - timedelta(hours=1)
    assert covered_days(stamps, start=early - timedelta(days=30), end=early) == pytest.approx(
        30 - 1 / 24
    )


def test_a_longer_run_covers_the_whole_window_and_a_shorter_one_its_span() -> None:
    long_run = _hours(datetime(2026, 1, 1, 1, tzinfo=UTC), 24 * 60)
    end = long_run[-1]
    assert covered_days(long_run, start=end - timedelta(days=30), end=end) == pytest.approx(30.0)
    short = _hours(datetime(2026, 1, 1, 1, tzinfo=UTC), 48)
    end = short[-1]
    assert covered_days(short, start=end - timedelta(days=30), end=end) == pytest.approx(2.0)


def test_a_window_with_no_snapshot_covers_nothing() -> None:
    stamps = _hours(datetime(2026, 1, 1, 1, tzinfo=UTC), 48)
    later = stamps[-1] + timedelta(days=40)
    assert covered_days(stamps, start=later - timedelta(days=30), end=later) == 0.0
