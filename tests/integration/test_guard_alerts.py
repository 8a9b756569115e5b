"""The live guard tells news only: a rising edge is one incident and one alert, a standing
breach is held back within the cooldown (across separate runs, through the state) and,
while the mode is latched by a FLATTEN_ALL, after it too. The seeded run (tests.
integration.test_risk_guard_live) breaches daily_pnl_extreme (MEDIUM) from hour 939,
sleeve_mdd_limit SOLUSDT (HIGH) from 941, mdd_limit (CRITICAL) from 949 and
sharpe_collapse (CRITICAL) from 954."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stagectl.config.home import Home, defaults_dir
from stagectl.domain.types import TradingState
from stagectl.notify import Delivery
from stagectl.services.guard.live import LiveGuardRequest, LiveGuardResult, run
from stagectl.state import flags, journal
from stagectl.state.db import open_state
from tests.integration.test_risk_guard_live import _seed, at_hour
from tests.loopback_http import Loopback, serve

DUPLICATE = "duplicate within cooldown"
LATCHED = "unchanged while trading is latched"


@pytest.fixture
def webhook() -> Iterator[Loopback]:
    with serve(200) as server:
        yield server


def guard_config(home: Home, server: Loopback, *, cooldown_h: float | None = None) -> Path:
    text = (defaults_dir() / "risk_guard_alt_ensemble.yaml").read_text()
    text = text.replace("webhook_url: null", f"webhook_url: {server.url}/hook")
    if cooldown_h is not None:
        text = text.replace("cooldown_h: 6 ", f"cooldown_h: {cooldown_h} ")
    path = home.root / "guard.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def seeded(tmp_path: Path) -> Home:
    home = Home(root=tmp_path)
    _seed(home.state_path)
    return home


def judge(home: Home, config: Path | None, hour: int, *, dry_run: bool = False) -> LiveGuardResult:
    """One hourly guard run, as cron starts it: its own process, so only the state links
    it to the runs before."""
    request = LiveGuardRequest(now=at_hour(hour), config=config, dry_run=dry_run)
    return run(request, home=home, env={}, delivery=Delivery(sleep=lambda _: None))


def webhook_result(result: LiveGuardResult) -> dict[str, Any]:
    [note] = [n for n in result.notifications if n["channel"] == "webhook"]
    return note


def test_a_standing_breach_is_sent_once_within_the_cooldown_and_news_goes_out_at_once(
    seeded: Home, webhook: Loopback
) -> None:
    config = guard_config(seeded, webhook)
    told = {h: webhook_result(judge(seeded, config, h)) for h in (939, 940, 941, 942, 949, 950)}
    assert {h: (n["status"], n["reason"]) for h, n in told.items()} == {
        939: ("sent", None),  # daily_pnl_extreme, MEDIUM: new
        940: ("skipped", DUPLICATE),
        941: ("sent", None),  # sleeve_mdd_limit SOLUSDT, HIGH: new
        942: ("skipped", DUPLICATE),
        949: ("sent", None),  # mdd_limit, CRITICAL: new
        950: ("skipped", DUPLICATE),
    }
    severities = [body["decision"]["severity"] for body in webhook.bodies()]
    assert severities == ["MEDIUM", "HIGH", "CRITICAL"]


def test_a_standing_breach_is_reminded_once_the_cooldown_has_passed(
    seeded: Home, webhook: Loopback
) -> None:
    config = guard_config(seeded, webhook, cooldown_h=2)
    statuses = [webhook_result(judge(seeded, config, h))["status"] for h in (939, 940, 941)]
    assert statuses == ["sent", "skipped", "sent"]  # 941 is news anyway
    statuses = [webhook_result(judge(seeded, config, h))["status"] for h in (942, 943, 944)]
    assert statuses == ["skipped", "sent", "skipped"]  # 943: two hours after 941


def test_a_delivery_that_failed_is_not_logged_so_the_next_run_sends_it(seeded: Home) -> None:
    with serve(500, 200) as server:
        config = guard_config(seeded, server)
        text = config.read_text().replace("retries: 3 ", "retries: 0 ")
        config.write_text(text)
        first = webhook_result(judge(seeded, config, 939))
        second = webhook_result(judge(seeded, config, 940))
    assert (first["status"], first["error"]) == ("failed", "HTTP 500")
    assert second["status"] == "sent"


def test_a_standing_breach_is_one_incident_not_one_an_hour(seeded: Home) -> None:
    ids = {h: judge(seeded, None, h).incident_ids for h in range(941, 956)}
    new = {h: len(i) for h, i in ids.items() if i}
    assert new == {941: 1, 949: 1, 954: 1}  # sleeve_mdd_limit, mdd_limit, sharpe_collapse
    with open_state(seeded.state_path) as db:
        rules = [(i.rule, i.severity) for i in journal.incidents(db)]
    assert rules == [
        ("sleeve_mdd_limit", "HIGH"),
        ("mdd_limit", "CRITICAL"),
        ("sharpe_collapse", "CRITICAL"),
    ]


def test_dry_runs_have_rising_edges_of_their_own(seeded: Home) -> None:
    """Cron's dry runs beside run-live's recorded guard: each stream logs its incidents."""
    recorded = [judge(seeded, None, h).incident_ids for h in (949, 950)]
    dry = [judge(seeded, None, h, dry_run=True).incident_ids for h in (949, 950)]
    assert [len(i) for i in recorded] == [2, 0]  # sleeve_mdd_limit and mdd_limit start
    assert [len(i) for i in dry] == [2, 0]


@pytest.mark.parametrize("latched", [False, True])
def test_while_latched_a_standing_breach_is_neither_reminded_nor_a_new_incident(
    seeded: Home, webhook: Loopback, latched: bool
) -> None:
    config = guard_config(seeded, webhook, cooldown_h=1)
    first = judge(seeded, config, 949)
    assert webhook_result(first)["status"] == "sent"
    if latched:
        with open_state(seeded.state_path) as db:
            flags.set_trading_state(
                db,
                "paper",
                TradingState.HALTED,
                reason="FLATTEN_ALL executed",
                source="FLATTEN_ALL",
                now=at_hour(949),
            )
    later = {h: judge(seeded, config, h) for h in (950, 951, 952, 954)}
    told = {h: (webhook_result(r)["status"], webhook_result(r)["reason"]) for h, r in later.items()}
    standing = ("skipped", LATCHED) if latched else ("sent", None)
    assert told == {950: standing, 951: standing, 952: standing, 954: ("sent", None)}
    assert [len(r.incident_ids) for r in later.values()] == [0, 0, 0, 1]


def test_run_live_names_the_escalated_directives_whatever_the_channels_did(
    seeded: Home, webhook: Loopback
) -> None:
    from stagectl.config.loader import load_risk_guard
    from stagectl.services.guard import alerts
    from stagectl.services.live.guard import escalation_lines

    config, _ = load_risk_guard(seeded, guard_config(seeded, webhook))
    told = alerts.directives(
        "stagectl risk-guard: ESCALATED (2 directive(s) unanswered)",
        {"escalated": [7, 9]},
        config,
        kind="escalation",
        env={},
        delivery=Delivery(sleep=lambda _: None),
    )
    assert {(n["channel"], n["status"]) for n in told} == {
        ("telegram", "skipped"),
        ("webhook", "sent"),
    }
    assert escalation_lines(told) == ["escalated: directive(s) [7, 9]"]
    assert webhook.bodies()[0]["escalated"] == [7, 9]
