"""The CLI's one time parser and one duration parser, and the exit paths they give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stagectl.cli._common import parse_duration, parse_now, parse_utc
from stagectl.errors import InputError
from tests.conftest import Run


@pytest.mark.parametrize(
    ("text", "end_of_day", "expected"),
    [
        ("2025-03-01", False, datetime(2025, 3, 1, tzinfo=UTC)),
        ("2025-03-01", True, datetime(2025, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2025-03-01T12:30Z", True, datetime(2025, 3, 1, 12, 30, tzinfo=UTC)),
        ("2025-03-01T12:30", False, datetime(2025, 3, 1, 12, 30, tzinfo=UTC)),
        ("2025-03-01T14:30+02:00", False, datetime(2025, 3, 1, 12, 30, tzinfo=UTC)),
    ],
)
def test_dates_and_times_become_aware_utc(text: str, end_of_day: bool, expected: datetime) -> None:
    parsed = parse_utc(text, option="--end", end_of_day=end_of_day)
    assert parsed == expected and parsed.tzinfo is UTC


def test_a_bad_time_names_the_option() -> None:
    with pytest.raises(InputError) as bad:
        parse_utc("yesterday", option="--since")
    assert bad.value.where == "--since" and "ISO-8601" in bad.value.message
    assert parse_now(None) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("1.5d", timedelta(hours=36)),
        ("2w", timedelta(days=14)),
        (" 30D ", timedelta(days=30)),
    ],
)
def test_durations_take_one_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text, option="--duration") == expected


@pytest.mark.parametrize("text", ["", "30", "d", "-1d", "1e3d", "nand", "infh", "1y", "1d2h"])
def test_a_malformed_duration_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError, match="is not a duration"):
        parse_duration(text, option="--test")


def test_zero_is_refused_unless_allowed_and_ten_years_is_the_limit() -> None:
    assert parse_duration("0d", option="--purge", allow_zero=True) == timedelta(0)
    with pytest.raises(InputError, match="> 0"):
        parse_duration("0d", option="--train")
    assert parse_duration("3653d", option="--duration") == timedelta(days=3653)
    for text in ("3654d", "522w", "99999999999d", "9" * 400 + "h"):
        with pytest.raises(InputError, match="too long: at most 10 years"):
            parse_duration(text, option="--duration")


def test_run_live_with_an_absurd_duration_exits_2_naming_the_option(run: Run) -> None:
    result = run(["run-live", "--duration", "99999999999d", "--json"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "--duration" in result.stderr and "too long" in result.stderr


def test_walk_forward_with_a_bad_train_window_exits_2(run: Run) -> None:
    result = run(["walk-forward", "--train", "120 days"])
    assert result.exit_code == 2 and "--train" in result.stderr
