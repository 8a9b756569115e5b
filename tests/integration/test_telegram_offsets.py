"""state.telegram: the on-call bot's offset only moves forward, per bot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from stagectl.state.db import open_state
from stagectl.state.telegram import Taken, last_taken, take_update

NOW = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)


def test_an_update_is_taken_once_and_the_offset_never_goes_back(tmp_path: Path) -> None:
    with open_state(tmp_path / "stagectl.db") as db:
        assert last_taken(db, "123") is None
        assert take_update(db, "123", 1000, now=NOW)
        assert not take_update(db, "123", 1000, now=NOW)
        assert not take_update(db, "123", 999, now=NOW)
        assert take_update(db, "456", 5, now=NOW)
        assert (last_taken(db, "123"), last_taken(db, "456")) == (Taken(1000, NOW), Taken(5, NOW))


def test_a_new_stream_of_updates_replaces_the_last_id_even_when_lower(tmp_path: Path) -> None:
    later = NOW + timedelta(days=9)
    with open_state(tmp_path / "stagectl.db") as db:
        take_update(db, "123", 1000, now=NOW)
        assert take_update(db, "123", 17, now=later, new_stream=True)
        assert last_taken(db, "123") == Taken(17, later)
