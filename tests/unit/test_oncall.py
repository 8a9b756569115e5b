"""domain.oncall: what a Telegram message asks, and what a /yes confirms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stagectl.domain.oncall import Command, Pending, confirmed, parse_command, too_old

T0 = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=60)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("/status", Command("status")),
        ("/Status@stagectl_bot", Command("status")),
        ("/halt", Command("halt")),
        ("/halt  exchange   incident ", Command("halt", note="exchange incident")),
        ("/reduce_only margin", Command("reduce_only", note="margin")),
        ("/confirm 12", Command("confirm", directive_id=12)),
        ("/cancel 12 stale mark", Command("cancel", directive_id=12, note="stale mark")),
        ("/yes", Command("yes")),
    ],
)
def test_a_command_is_read_from_its_message(text: str, command: Command) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("/confirm", "say which directive"),
        ("/confirm twelve", "say which directive"),
        ("/confirm 0", "say which directive"),
        ("/cancel 12", "say why"),
        ("/status now", "it takes nothing after it"),
        ("/flatten", "unknown command /flatten"),
    ],
)
def test_a_message_that_is_no_command_gets_a_usage_line(text: str, says: str) -> None:
    answer = parse_command(text)
    assert isinstance(answer, str)
    assert says in answer


@pytest.mark.parametrize("text", ["halt now", "", "  ", "ok /yes"])
def test_a_message_that_is_no_command_asks_nothing(text: str) -> None:
    assert parse_command(text) is None


def _halt(user_id: int = 7, chat_id: int = 42) -> Pending:
    return Pending(Command("halt"), chat_id, user_id, T0)


def test_a_yes_within_the_window_confirms_the_waiting_command() -> None:
    at = T0 + WINDOW
    assert confirmed(_halt(), chat_id=42, user_id=7, at=at, within=WINDOW) == Command("halt")


def test_a_yes_after_the_window_confirms_nothing() -> None:
    at = T0 + WINDOW + timedelta(seconds=1)
    answer = confirmed(_halt(), chat_id=42, user_id=7, at=at, within=WINDOW)
    assert answer == "/halt expired: no /yes within 60 s; send it again"


def test_a_yes_from_another_person_or_chat_or_with_nothing_waiting_confirms_nothing() -> None:
    for pending, chat, user in ((_halt(), 42, 8), (_halt(), 43, 7), (None, 42, 7)):
        answer = confirmed(pending, chat_id=chat, user_id=user, at=T0, within=WINDOW)
        assert isinstance(answer, str)


def test_a_command_is_too_old_past_its_maximum_age_only() -> None:
    age = timedelta(minutes=10)
    assert not too_old(T0, T0 + age, age)
    assert too_old(T0, T0 + age + timedelta(seconds=1), age)
