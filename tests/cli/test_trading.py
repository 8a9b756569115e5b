"""stagectl trading status|enable|disable|reduce-only: exit codes, --json, history."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Run


def test_status_of_a_home_without_a_database_is_active_never_set(run: Run, home: Path) -> None:
    result = run(["trading", "status", "--json"])
    assert result.exit_code == 0
    document = result.json()
    assert document["trading_state"] == "ACTIVE" and document["database_exists"] is False
    assert document["history"] == []
    assert not (home / "state").exists()


def test_disable_halts_and_status_shows_the_reason_and_history(run: Run) -> None:
    assert run(["trading", "reduce-only", "--reason", "margin 25 %"]).exit_code == 0
    disabled = run(["trading", "disable", "--reason", "exchange incident", "--json"])
    assert disabled.exit_code == 0
    change = disabled.json()
    assert (change["from_state"], change["to_state"], change["changed"]) == (
        "REDUCE_ONLY",
        "HALTED",
        True,
    )
    status = run(["trading", "status", "--json"]).json()
    assert status["trading_state"] == "HALTED" and status["reason"] == "exchange incident"
    assert [(h["from_state"], h["to_state"]) for h in status["history"]] == [
        ("REDUCE_ONLY", "HALTED"),
        ("ACTIVE", "REDUCE_ONLY"),
    ]
    text = run(["trading", "status"])
    assert text.exit_code == 0 and "trading state: HALTED" in text.stdout


def test_enable_returns_to_active_and_a_repeat_is_recorded_unchanged(run: Run) -> None:
    run(["trading", "disable"])
    assert run(["trading", "enable", "--json"]).json()["to_state"] == "ACTIVE"
    again = run(["trading", "enable", "--json"]).json()
    assert again["changed"] is False
    assert len(run(["trading", "status", "--json"]).json()["history"]) == 3


def test_paper_flag_uses_the_paper_state_database(run: Run, home: Path) -> None:
    assert run(["trading", "disable", "--paper"]).exit_code == 0
    assert (home / "state" / "paper.db").is_file()
    assert run(["trading", "status", "--paper", "--json"]).json()["trading_state"] == "HALTED"
    assert run(["trading", "status", "--json"]).json()["trading_state"] == "ACTIVE"


def test_an_empty_reason_is_a_usage_error(run: Run) -> None:
    result = run(["trading", "disable", "--reason", "  "])
    assert result.exit_code == 2 and "--reason" in result.stderr


def test_a_file_that_is_not_a_database_is_exit_2(run: Run, home: Path) -> None:
    (home / "state").mkdir()
    (home / "state" / "stagectl.db").write_text("not sqlite " * 200)
    result = run(["trading", "status"])
    assert result.exit_code == 2 and "not a SQLite database" in result.stderr


def test_trading_without_a_subcommand_shows_help_and_exits_2(run: Run) -> None:
    result = run(["trading"])
    assert result.exit_code == 2 and "status" in result.stderr
