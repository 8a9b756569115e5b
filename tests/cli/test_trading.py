"""stagectl trading status|enable|disable|reduce-only: exit codes, --json, history."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Run


def test_status_of_a_home_without_a_database_is_active_never_set(run: Run, home: Path) -> None:
    result = run(["trading", "status", "--json"])
    assert result.exit_code == 0
    document = result.json()
    assert document["database_exists"] is False
    assert {m: s["trading_state"] for m, s in document["modes"].items()} == {
        "paper": "ACTIVE",
        "live": "ACTIVE",
    }
    assert document["history"] == []
    assert not (home / "state").exists()


def _states(run: Run) -> dict[str, str]:
    modes = run(["trading", "status", "--json"]).json()["modes"]
    return {mode: state["trading_state"] for mode, state in modes.items()}


def test_disable_without_a_mode_halts_paper_and_live_and_status_shows_the_history(
    run: Run,
) -> None:
    assert run(["trading", "reduce-only", "--reason", "margin 25 %"]).exit_code == 0
    disabled = run(["trading", "disable", "--reason", "exchange incident", "--json"])
    assert disabled.exit_code == 0
    changes = disabled.json()["changes"]
    assert [(c["mode"], c["from_state"], c["to_state"], c["changed"]) for c in changes] == [
        ("paper", "REDUCE_ONLY", "HALTED", True),
        ("live", "REDUCE_ONLY", "HALTED", True),
    ]
    status = run(["trading", "status", "--json"]).json()
    assert status["modes"]["live"]["reason"] == "exchange incident"
    assert _states(run) == {"paper": "HALTED", "live": "HALTED"}
    assert [(h["mode"], h["to_state"]) for h in status["history"]] == [
        ("live", "HALTED"),
        ("paper", "HALTED"),
        ("live", "REDUCE_ONLY"),
        ("paper", "REDUCE_ONLY"),
    ]
    text = run(["trading", "status"])
    assert text.exit_code == 0 and "HALTED" in text.stdout and "live" in text.stdout


def test_enable_without_a_mode_re_enables_paper_only_and_a_repeat_is_recorded(run: Run) -> None:
    run(["trading", "disable"])
    enabled = run(["trading", "enable", "--json"]).json()["changes"]
    assert [(c["mode"], c["to_state"]) for c in enabled] == [("paper", "ACTIVE")]
    assert _states(run) == {"paper": "ACTIVE", "live": "HALTED"}
    again = run(["trading", "enable", "--json"]).json()["changes"]
    assert again[0]["changed"] is False
    assert run(["trading", "enable", "--live"]).exit_code == 0
    assert _states(run) == {"paper": "ACTIVE", "live": "ACTIVE"}


def test_a_mode_flag_changes_only_that_mode_in_the_one_state_database(run: Run, home: Path) -> None:
    assert run(["trading", "disable", "--paper"]).exit_code == 0
    assert _states(run) == {"paper": "HALTED", "live": "ACTIVE"}
    assert run(["trading", "reduce-only", "--live"]).exit_code == 0
    assert _states(run) == {"paper": "HALTED", "live": "REDUCE_ONLY"}
    assert sorted(p.name for p in (home / "state").glob("*.db")) == ["stagectl.db"]


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
