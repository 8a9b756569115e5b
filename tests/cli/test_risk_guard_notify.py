"""`stagectl risk-guard` and its notifications: a notification never changes the exit
code or the report, and a guard that could not judge says so on the configured channels."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from stagectl.config.home import defaults_dir
from tests.conftest import Run
from tests.integration.test_risk_guard_live import HOURS, _seed, at_hour
from tests.loopback_http import Loopback, serve

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
TOKEN = "987654:cli-secret-token"
HOOK_SECRET = "hook-path-SECRET-1f2e3d"


@pytest.fixture
def server() -> Iterator[Loopback]:
    with serve(200) as loop:
        yield loop


def guard_config(home: Path, server: Loopback, *, broken: bool = False) -> Path:
    """The packaged guard config with the webhook (and apprise's json://) at ``server``;
    ``broken``: one rule's operator invalid, the notify section intact."""
    text = (defaults_dir() / "risk_guard_alt_ensemble.yaml").read_text()
    host = server.url.split("//")[1]
    text = text.replace("webhook_url: null", f"webhook_url: {server.url}/{HOOK_SECRET}")
    text = text.replace("apprise_urls: []", f'apprise_urls: ["json://{host}/${{APPRISE_TOKEN}}"]')
    if broken:
        text = text.replace('op: ">"', 'op: "bigger"', 1)
    path = home / "guard.yaml"
    path.write_text(text)
    return path


def at(hour: int) -> str:
    return at_hour(hour).isoformat()


def iso_times(value: object) -> list[str]:
    """Every string in a JSON document that looks like a time (has a 'T' between digits)."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in iso_times(v)]
    if isinstance(value, list):
        return [t for v in value for t in iso_times(v)]
    if isinstance(value, str) and re.match(r"^\d{4}-\d\d-\d\dT", value):
        return [value]
    return []


def test_a_webhook_alert_keeps_the_exit_code_and_the_report_and_sends_valid_json(
    run: Run, home: Path, server: Loopback
) -> None:
    _seed(home / "state" / "stagectl.db")
    config = guard_config(home, server)
    out = home / "reports" / "guard.json"
    env = {"APPRISE_TOKEN": TOKEN}
    args = ["risk-guard", "-c", config, "--now", at(HOURS - 1), "--out", out, "--unsigned"]
    result = run(args, env=env)
    assert result.exit_code == 1, result.stderr  # FLATTEN_ALL: the guard's own code
    report = json.loads(out.read_text())
    notes = {n["channel"]: n for n in report["body"]["notifications"]}
    assert (notes["webhook"]["status"], notes["apprise:json"]["status"]) == ("sent", "sent")
    assert notes["telegram"]["status"] == "skipped"
    hook, apprise = sorted(server.requests, key=lambda r: r["path"] != f"/{HOOK_SECRET}")
    body = json.loads(hook["raw"])  # valid JSON, or this fails
    assert body["decision"]["action"] == "FLATTEN_ALL"
    times = iso_times(body)
    assert {body["decision"]["at"], body["decision"]["bar"]} <= set(times)
    assert all(ISO_Z.match(t) for t in times), times
    assert json.loads(apprise["raw"])["message"] == body["text"]
    for text in (result.stdout, result.stderr, out.read_text()):
        assert TOKEN not in text and HOOK_SECRET not in text


def test_the_next_hourly_run_reports_the_standing_alert_as_a_duplicate(
    run: Run, home: Path, server: Loopback
) -> None:
    _seed(home / "state" / "stagectl.db")
    config = guard_config(home, server)
    env = {"APPRISE_TOKEN": TOKEN}
    first = run(["risk-guard", "-c", config, "--now", at(HOURS - 2)], env=env)
    second = run(["risk-guard", "-c", config, "--now", at(HOURS - 1), "--json"], env=env)
    assert (first.exit_code, second.exit_code) == (1, 1)
    assert len(server.requests) == 2  # the webhook and apprise, once
    notes = second.json()["body"]["notifications"]
    assert {(n["channel"], n["status"], n["reason"]) for n in notes} == {
        (channel, "skipped", "duplicate within cooldown")
        for channel in ("telegram", "webhook", "apprise:json")
    }
    assert "notification via webhook skipped: duplicate within cooldown" in second.stderr


def test_a_failing_channel_keeps_the_exit_code_and_the_report(run: Run, home: Path) -> None:
    _seed(home / "state" / "stagectl.db")
    with serve(401) as refusing:
        config = guard_config(home, refusing)
        out = home / "guard.json"
        args = ["risk-guard", "-c", config, "--now", at(HOURS - 1), "--out", out, "--unsigned"]
        result = run(args, env={"APPRISE_TOKEN": TOKEN})
    assert result.exit_code == 1
    notes = {n["channel"]: n for n in json.loads(out.read_text())["body"]["notifications"]}
    assert (notes["webhook"]["status"], notes["webhook"]["attempts"]) == ("failed", 1)
    assert "notification via webhook failed: HTTP 401" in result.stderr
    assert HOOK_SECRET not in result.stderr and TOKEN not in result.stderr


def test_a_broken_config_alerts_that_the_guard_could_not_judge_and_still_exits_2(
    run: Run, home: Path, server: Loopback
) -> None:
    _seed(home / "state" / "stagectl.db")
    config = guard_config(home, server, broken=True)
    result = run(["risk-guard", "-c", config, "--now", at(HOURS - 1)], env={"APPRISE_TOKEN": TOKEN})
    assert result.exit_code == 2
    assert "could-not-judge alert sent via webhook" in result.stderr
    hook = next(json.loads(r["raw"]) for r in server.requests if HOOK_SECRET in r["path"])
    assert (hook["kind"], hook["command"], hook["exit_code"]) == (
        "could-not-judge",
        "risk-guard",
        2,
    )
    assert "guard.yaml" in hook["error"] and "op" in hook["error"]
    assert "the guard could not judge (exit 2)" in hook["text"]


def test_an_unreadable_state_alerts_with_exit_3(run: Run, home: Path, server: Loopback) -> None:
    (home / "state").mkdir()
    (home / "state" / "stagectl.db").write_bytes(b"garbage" * 500)
    config = guard_config(home, server)
    result = run(["risk-guard", "-c", config], env={"APPRISE_TOKEN": TOKEN})
    assert result.exit_code == 3
    bodies = [json.loads(r["raw"]) for r in server.requests]
    assert [b.get("exit_code") for b in bodies if "exit_code" in b] == [3]
    apprise = next(b for b in bodies if "message" in b)
    assert "could not judge (exit 3)" in apprise["message"]


def test_the_weekly_review_alerts_when_it_could_not_judge(
    run: Run, home: Path, server: Loopback
) -> None:
    config = guard_config(home, server)
    result = run(["risk-guard", "--weekly", "-c", config], env={"APPRISE_TOKEN": TOKEN})
    assert result.exit_code == 2
    hook = next(json.loads(r["raw"]) for r in server.requests if HOOK_SECRET in r["path"])
    assert (hook["command"], hook["exit_code"]) == ("risk-guard --weekly", 2)


def test_an_internal_error_alerts_with_exit_70_and_its_secrets_masked(
    run: Run, home: Path, server: Loopback, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stagectl.services.guard import live

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"boom near bot{TOKEN} and {server.url}/{HOOK_SECRET}")

    monkeypatch.setattr(live, "run", broken)
    config = guard_config(home, server)
    env = {"APPRISE_TOKEN": TOKEN, "FUTURES_TELEGRAM_BOT_TOKEN": TOKEN}
    result = run(["risk-guard", "-c", config], env=env)
    assert result.exit_code == 70
    bodies = [r["raw"] for r in server.requests]
    assert len(bodies) == 2  # the webhook and apprise (Telegram's chat id is not set)
    hook = next(json.loads(b) for b in bodies if '"exit_code"' in b)
    assert hook["exit_code"] == 70 and "RuntimeError: boom near bot***" in hook["error"]
    for raw in bodies:
        assert TOKEN not in raw and HOOK_SECRET not in raw


def test_without_a_loadable_notify_section_nothing_is_sent_and_the_code_stands(
    run: Run, home: Path
) -> None:
    config = home / "guard.yaml"
    config.write_text("notify: {}\n")
    result = run(["risk-guard", "-c", config])
    assert result.exit_code == 2
    assert "could-not-judge" not in result.stderr


def test_a_paper_run_live_guard_notifies_nobody(run: Run, home: Path, server: Loopback) -> None:
    """Its clock is a replay's: a historical FLATTEN_ALL must not reach the desk, on any
    channel (the webhook and apprise's as well as Telegram)."""
    config = guard_config(home, server)
    rule = '  - id: mdd_limit\n    indicator: running_mdd_pct\n    op: ">"\n    value: 12.0\n'
    text = config.read_text()
    assert rule in text
    (home / "config").mkdir(exist_ok=True)
    tightened = text.replace(rule, rule.replace("value: 12.0", "value: 0.2"))
    (home / "config" / "risk_guard_alt_ensemble.yaml").write_text(tightened)
    strategy = (defaults_dir() / "futures_alt_ensemble.yaml").read_text()
    (home / "config" / "futures_alt_ensemble.yaml").write_text(strategy)
    args = ["run-live", "--start", "2024-02-06", "--end", "2024-02-19", "--json"]
    result = run(args, env={"APPRISE_TOKEN": TOKEN})
    assert result.exit_code == 0, result.stderr
    assert "FLATTEN_ALL (CRITICAL): mdd_limit" in result.stderr
    assert server.requests == []
