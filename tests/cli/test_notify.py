"""`stagectl notify unit-failed`: the OnFailure= handler of the units tells the guard
config's notify channels which unit failed and how, and says who heard it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_risk_guard_notify import HOOK_SECRET, TOKEN, guard_config
from tests.conftest import Run
from tests.loopback_http import Loopback, serve

MONITOR = {"MONITOR_SERVICE_RESULT": "exit-code", "MONITOR_EXIT_STATUS": "3"}


@pytest.fixture
def server() -> Iterator[Loopback]:
    with serve(200) as loop:
        yield loop


def test_a_failed_unit_reaches_the_webhook_with_how_it_ended(
    run: Run, home: Path, server: Loopback
) -> None:
    config = guard_config(home, server)
    env = {**MONITOR, "APPRISE_TOKEN": TOKEN}
    result = run(["notify", "unit-failed", "stagectl-weekly.service", "-c", config], env=env)
    assert result.exit_code == 0, result.stderr
    assert "stagectl-weekly.service failed: webhook sent" in result.stdout.splitlines()
    hook = next(json.loads(r["raw"]) for r in server.requests if HOOK_SECRET in r["path"])
    assert (hook["kind"], hook["unit"], hook["result"], hook["exit"]) == (
        "unit-failed",
        "stagectl-weekly.service",
        "exit-code",
        "3",
    )
    assert "stagectl-weekly.service failed (result exit-code, exit 3)" in hook["text"]
    assert "journalctl --user -u stagectl-weekly.service" in hook["text"]
    for text in (result.stdout, result.stderr):
        assert TOKEN not in text and HOOK_SECRET not in text


def test_nobody_told_is_exit_1_with_each_channels_answer(run: Run, home: Path) -> None:
    result = run(["notify", "unit-failed", "stagectl-run-live.service", "--json"])
    assert result.exit_code == 1
    document = result.json()
    assert (document["unit"], document["result"], document["exit_status"]) == (
        "stagectl-run-live.service",
        None,
        None,
    )
    (telegram,) = document["notifications"]
    assert (telegram["channel"], telegram["status"]) == ("telegram", "skipped")


def test_a_bad_unit_name_is_exit_2(run: Run, home: Path) -> None:
    result = run(["notify", "unit-failed", "no such unit; rm -rf /"])
    assert result.exit_code == 2
    assert result.stderr.startswith("stagectl: UNIT: ")


def test_a_notify_section_that_does_not_load_is_exit_2(
    run: Run, home: Path, server: Loopback
) -> None:
    config = guard_config(home, server)
    config.write_text(config.read_text().replace("notify:\n", "notify_gone:\n"))
    result = run(["notify", "unit-failed", "stagectl-weekly.service", "-c", config])
    assert result.exit_code == 2
    assert "notify section does not load" in result.stderr
    assert server.requests == []


def test_notify_test_reaches_the_webhook_and_apprise_and_prints_each_answer(
    run: Run, home: Path, server: Loopback
) -> None:
    config = guard_config(home, server)
    result = run(["notify", "test", "-c", config, "--json"], env={"APPRISE_TOKEN": TOKEN})
    assert result.exit_code == 0, result.stderr
    answers = {a["channel"]: a["status"] for a in result.json()["notifications"]}
    assert answers["webhook"] == "sent"
    assert answers["telegram"] == "skipped"
    assert any(
        channel.startswith("apprise") and status == "sent" for channel, status in answers.items()
    )
    hook = next(json.loads(r["raw"]) for r in server.requests if HOOK_SECRET in r["path"])
    assert hook["kind"] == "test" and "test message" in hook["text"]
    apprise_paths = [r["path"] for r in server.requests if TOKEN in r["path"]]
    assert apprise_paths, "the apprise json:// URL was not called"
    for text in (result.stdout, result.stderr):
        assert TOKEN not in text and HOOK_SECRET not in text


def test_notify_test_without_a_channel_that_takes_it_is_exit_1(run: Run, home: Path) -> None:
    result = run(["notify", "test"])
    assert result.exit_code == 1
    assert result.stdout.startswith("test message: telegram skipped")
