"""state.telegram: the on-call bot's offset only moves forward, per bot."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from stagectl.state.db import open_state
from stagectl.state.telegram import last_update_id, take_update

NOW = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)


def test_an_update_is_taken_once_and_the_offset_never_goes_back(tmp_path: Path) -> None:
    with open_state(tmp_path / "stagectl.db") as db:
        assert last_update_id(db, "123") is None
        assert take_update(db, "123", 1000, now=NOW)
        assert not take_update(db, "123", 1000, now=NOW)
        assert not take_update(db, "123", 999, now=NOW)
        assert take_update(db, "456", 5, now=NOW)
        assert (last_update_id(db, "123"), last_update_id(db, "456")) == (1000, 5)
