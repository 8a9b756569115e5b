"""stagectl telegram serve|test: on-call from Telegram, against a loopback stub of the
Bot API (tests/bot_api_stub.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stagectl.config.home import Home
from stagectl.domain.directives import DirectiveState, OnTimeout
from stagectl.domain.types import TradingState
from stagectl.services.telegram import bot
from stagectl.state import journal
from stagectl.state.db import open_state
from stagectl.state.directives import RiskDirective, get_directive, record_directive
from stagectl.state.equity import EquitySnapshot, record_snapshots
from stagectl.state.flags import trading_state_history, trading_states
from stagectl.state.runs import Run as RunRow
from stagectl.state.runs import start_run
from stagectl.state.telegram import take_update
from tests.bot_api_stub import TOKEN, BotApi, serve_bot_api
from tests.conftest import REPO_ROOT, Run

CHAT = 42
HANG_GUARD_S = 60.0  # a stuck bot fails the test instead of hanging the suite


@pytest.fixture
def api(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BotApi]:
    """The stub, with the home's bot pointed at it: token and chat in the environment."""
    with serve_bot_api() as stub:
        monkeypatch.setenv("FUTURES_TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("FUTURES_TELEGRAM_CHAT_ID", str(CHAT))
        monkeypatch.setenv("STAGECTL_TELEGRAM_API_BASE", stub.url)
        yield stub


def _db(home: Path) -> Path:
    return home / "state" / "stagectl.db"


def _pending(home: Path) -> int:
    with open_state(_db(home)) as db:
        return record_directive(
            db,
            RiskDirective(
                datetime.now(UTC) - timedelta(minutes=5),
                "FLATTEN_ALL",
                0.0,
                mode="live",
                state=DirectiveState.PENDING,
                confirm_by=datetime.now(UTC) + timedelta(minutes=25),
                on_timeout=OnTimeout.EXECUTE,
                rule="daily_loss_limit",
                indicator_value=-5.4,
            ),
        )


def _state(home: Path, directive_id: int) -> DirectiveState:
    with open_state(_db(home)) as db:
        found = get_directive(db, directive_id)
    assert found is not None
    return found.state


def _events(home: Path, event_type: str) -> list[journal.Event]:
    with open_state(_db(home)) as db:
        return journal.events(db, event_type=event_type)


def _states(home: Path) -> dict[str, TradingState]:
    with open_state(_db(home)) as db:
        return {mode: flag.state for mode, flag in trading_states(db).items()}


def test_status_answers_state_equity_drawdown_directives_and_records_the_user(
    run: Run, home: Path, api: BotApi
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with open_state(_db(home)) as db:
        start_run(db, RunRow("live-1", "run-live", "live", now - timedelta(days=3)))
        record_snapshots(
            db,
            [
                EquitySnapshot("live-1", now - timedelta(hours=2), 100_000.0),
                EquitySnapshot("live-1", now - timedelta(hours=1), 95_000.0),
            ],
        )
    directive_id = _pending(home)
    api.message("/status")

    result = run(["telegram", "serve", "--once", "--json"])

    assert result.exit_code == 0, result.stderr
    assert result.json()["commands"] == 1
    assert [m["chat_id"] for m in api.sent] == [str(CHAT)]
    reply = api.texts()[0]
    assert "live: ACTIVE" in reply
    assert "live equity 95,000.00" in reply
    assert "drawdown 5.00 % from peak 100,000.00" in reply
    assert f"#{directive_id} FLATTEN_ALL all (live): pending: /confirm {directive_id}" in reply
    assert "last guard decision: none recorded" in reply
    [event] = _events(home, bot.COMMAND)
    assert event.payload is not None
    assert (event.payload["user_id"], event.payload["username"], event.payload["text"]) == (
        7,
        "oncall",
        "/status",
    )
    written = b"".join(f.read_bytes() for f in _db(home).parent.iterdir() if f.is_file())
    assert TOKEN.encode() not in written + result.stdout.encode() + result.stderr.encode()


def test_confirm_waits_for_yes_then_confirms_as_the_telegram_user(
    run: Run, home: Path, api: BotApi
) -> None:
    directive_id = _pending(home)
    api.message(f"/confirm {directive_id}")

    asked = run(["telegram", "serve", "--once"])

    assert asked.exit_code == 0, asked.stderr
    assert _state(home, directive_id) == DirectiveState.PENDING
    assert api.texts()[0] == (
        f"/confirm {directive_id}: directive {directive_id}, FLATTEN_ALL all (live, pending, "
        "rule daily_loss_limit) binds the loop from its next bar.\nSend /yes within 60 s to do it."
    )

    api.message(f"/confirm {directive_id}")
    api.message("/yes")
    done = run(["telegram", "serve", "--once"])

    assert done.exit_code == 0, done.stderr
    assert _state(home, directive_id) == DirectiveState.ACTIVE
    assert api.texts()[-1] == f"directive {directive_id} (FLATTEN_ALL all, live): pending -> active"
    [confirmed] = _events(home, "DIRECTIVE_CONFIRMED")
    assert confirmed.payload is not None
    assert confirmed.payload["by"] == "telegram @oncall (7)"


def test_halt_acts_on_a_yes_within_the_window_and_not_after_it(
    run: Run, home: Path, api: BotApi
) -> None:
    now = time.time()
    api.message("/halt feed looks wrong", sent_at=now - 200)
    api.message("/yes", sent_at=now - 200 + 61)  # the window is 60 s

    late = run(["telegram", "serve", "--once"])

    assert late.exit_code == 0, late.stderr
    assert "expired" in api.texts()[-1]
    assert _states(home) == {"paper": TradingState.ACTIVE, "live": TradingState.ACTIVE}

    api.message("/halt feed looks wrong", sent_at=now - 20)
    api.message("/yes", sent_at=now - 10)
    run(["telegram", "serve", "--once"])

    assert _states(home) == {"paper": TradingState.HALTED, "live": TradingState.HALTED}
    assert api.texts()[-1] == "paper: ACTIVE -> HALTED\nlive: ACTIVE -> HALTED"
    with open_state(_db(home)) as db:
        latest = trading_state_history(db, limit=1)[0]
    assert latest.source == "telegram"
    assert latest.reason == "feed looks wrong (by telegram @oncall (7))"


def test_a_yes_from_someone_else_confirms_nothing(run: Run, home: Path, api: BotApi) -> None:
    api.message("/reduce_only")
    api.message("/yes", user_id=8, username="visitor")

    run(["telegram", "serve", "--once"])

    assert _states(home) == {"paper": TradingState.ACTIVE, "live": TradingState.ACTIVE}
    assert "waits for a /yes from the person who sent it" in api.texts()[-1]


def test_a_message_from_an_unknown_chat_is_ignored_and_recorded(
    run: Run, home: Path, api: BotApi
) -> None:
    api.message("/halt", chat_id=99, user_id=666, username="stranger")
    api.message("/yes", chat_id=99, user_id=666, username="stranger")
    api.message("", chat_id=99, user_id=666, username="stranger")  # a photo: no text

    result = run(["telegram", "serve", "--once", "--json"])

    assert result.exit_code == 0, result.stderr
    assert result.json()["ignored"] == 3
    assert api.sent == []
    assert _states(home) == {"paper": TradingState.ACTIVE, "live": TradingState.ACTIVE}
    ignored = _events(home, bot.IGNORED)
    assert [(e.payload or {}).get("chat_id") for e in ignored] == [99, 99, 99]
    assert [(e.payload or {}).get("user_id") for e in ignored] == [666, 666, 666]
    assert [(e.payload or {}).get("username") for e in ignored] == ["stranger"] * 3
    assert _events(home, bot.COMMAND) == []


def test_the_bot_logs_its_notes_and_its_end_as_json_lines(
    run: Run, home: Path, api: BotApi
) -> None:
    (home / "logs").mkdir()
    api.message("/status", chat_id=99, user_id=666, username="stranger")

    result = run(["telegram", "serve", "--once"])

    assert result.exit_code == 0, result.stderr
    text = (home / "logs" / "telegram-serve.jsonl").read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["event"] for line in lines] == ["started", "note", "served", "finished"]
    assert "chat 99" in lines[1]["fields"]["message"]
    assert lines[2]["fields"]["ignored"] == 1
    assert lines[3]["fields"]["exit_code"] == 0
    assert TOKEN not in text


def test_a_restarted_bot_runs_no_update_again(run: Run, home: Path, api: BotApi) -> None:
    directive_id = _pending(home)
    api.forget_offsets = True  # Telegram delivers them again: the offset never reached it
    api.message(f"/cancel {directive_id} stale mark")
    last = api.message("/yes")

    run(["telegram", "serve", "--once"])
    replies = len(api.sent)
    again = run(["telegram", "serve", "--once", "--json"])

    assert again.exit_code == 0, again.stderr
    assert again.json()["updates"] == 0
    assert api.polls[-1]["offset"] == last + 1
    assert len(api.sent) == replies == 2
    assert _state(home, directive_id) == DirectiveState.CANCELLED
    assert len(_events(home, "DIRECTIVE_CANCELLED")) == 1
    assert len(_events(home, bot.COMMAND)) == 2


def test_chatter_in_the_chat_gets_no_answer_and_an_unknown_command_the_list(
    run: Run, home: Path, api: BotApi
) -> None:
    api.message("who is on call tonight?")
    api.message("/flatten")

    run(["telegram", "serve", "--once"])

    assert len(api.sent) == 1
    assert api.texts()[0].startswith("unknown command /flatten: the commands are")
    assert [(e.payload or {}).get("text") for e in _events(home, bot.COMMAND)] == ["/flatten"]


def test_a_refused_action_is_answered_and_recorded(run: Run, home: Path, api: BotApi) -> None:
    api.message("/confirm 77")
    api.message("/yes")

    result = run(["telegram", "serve", "--once"])

    assert result.exit_code == 0, result.stderr
    assert api.texts() == ["/confirm 77 not done: ID: no directive 77", "nothing waits for a /yes"]
    [refused] = _events(home, bot.REFUSED)
    assert (refused.payload or {}).get("user_id") == 7


def test_after_a_day_without_updates_the_bot_polls_without_offset_and_takes_lower_ids(
    run: Run, home: Path, api: BotApi
) -> None:
    with open_state(_db(home)) as db:  # Telegram renumbers after a quiet week
        take_update(db, "123456", 50_000, now=datetime.now(UTC) - timedelta(days=8))
    api.message("/status")

    result = run(["telegram", "serve", "--once", "--json"])

    assert result.exit_code == 0, result.stderr
    assert "offset" not in api.polls[0]
    assert result.json()["last_update_id"] == 1000
    assert len(api.sent) == 1


def test_a_command_read_long_after_it_was_sent_is_not_run(
    run: Run, home: Path, api: BotApi
) -> None:
    sent = time.time() - 3600  # the bot was down for an hour
    api.message("/halt", sent_at=sent)
    api.message("/yes", sent_at=sent + 5)

    run(["telegram", "serve", "--once"])

    assert _states(home) == {"paper": TradingState.ACTIVE, "live": TradingState.ACTIVE}
    assert "(was the bot down?)" in api.texts()[-1]


def test_a_rate_limited_poll_waits_as_long_as_telegram_asks(home: Path, api: BotApi) -> None:
    api.rate_limits = [7]
    api.message("/help")
    waits: list[float] = []

    result = bot.serve(
        bot.ServeRequest(once=True), home=Home.resolve(home), env=os.environ, sleep=waits.append
    )

    assert waits == [7.0]
    assert result.commands == 1
    assert api.texts()[0].startswith("the commands are")


def test_a_failed_poll_backs_off_doubling_and_a_conflict_is_not_a_refused_token(
    home: Path, api: BotApi
) -> None:
    api.poll_errors = [502, 409, 502]
    api.message("/help")
    waits: list[float] = []

    result = bot.serve(
        bot.ServeRequest(),
        home=Home.resolve(home),
        env=os.environ,
        sleep=waits.append,
        stop=_StopAfterReplies(api, 1),
    )

    assert waits == [1.0, 2.0, 4.0]
    assert result.commands == 1


class _StopAfterReplies:
    """Stops the bot once the stub has sent ``count`` replies."""

    def __init__(self, api: BotApi, count: int) -> None:
        self.api, self.count = api, count

    def requested(self) -> bool:
        return len(self.api.sent) >= self.count

    def waiting(self) -> AbstractContextManager[object]:
        return nullcontext()


def test_a_refused_token_exits_3_and_never_prints_it(
    run: Run, home: Path, api: BotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "999999:wrong-token-zyxwvutsrq"
    monkeypatch.setenv("FUTURES_TELEGRAM_BOT_TOKEN", wrong)

    result = run(["telegram", "serve"])

    assert result.exit_code == 3
    assert "HTTP 401" in result.stderr
    assert wrong not in result.stdout + result.stderr


def test_no_chat_to_answer_is_a_usage_error(
    run: Run, api: BotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FUTURES_TELEGRAM_CHAT_ID")

    result = run(["telegram", "serve", "--once"])

    assert result.exit_code == 2
    assert "no chat to answer" in result.stderr


def test_a_token_file_readable_by_others_is_refused(
    run: Run, home: Path, api: BotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FUTURES_TELEGRAM_BOT_TOKEN")
    token_file = home / "bot-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o644)
    config = home / "guard.yaml"
    packaged = (REPO_ROOT / "config" / "risk_guard_alt_ensemble.yaml").read_text()
    config.write_text(packaged.replace("bot_token_file: null", "bot_token_file: bot-token"))

    refused = run(["telegram", "serve", "--once", "-c", config])
    token_file.chmod(0o600)
    api.message("/help")
    served = run(["telegram", "serve", "--once", "-c", config])

    assert refused.exit_code == 2
    assert "chmod 600" in refused.stderr
    assert TOKEN not in refused.stderr
    assert served.exit_code == 0, served.stderr
    assert len(api.sent) == 1


def test_telegram_test_checks_the_token_and_messages_the_chat(run: Run, api: BotApi) -> None:
    result = run(["telegram", "test", "--json"])

    assert result.exit_code == 0, result.stderr
    assert result.json()["username"] == "stagectl_stub_bot"
    assert result.json()["chats"] == [{"chat_id": CHAT, "sent": True, "error": None}]
    assert [m["chat_id"] for m in api.sent] == [str(CHAT)]


def test_sigterm_stops_the_waiting_bot_with_exit_130(home: Path, api: BotApi) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT / "src"), str(REPO_ROOT)) if p),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "stagectl", "telegram", "serve"],
        env=env,
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert api.polled.wait(HANG_GUARD_S), "the bot never polled"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=HANG_GUARD_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 130, stderr
    assert "stagectl: interrupted" in stderr
    assert TOKEN not in stderr


def test_telegram_test_without_a_chat_lists_the_chats_that_wrote_to_the_bot(
    run: Run, api: BotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FUTURES_TELEGRAM_CHAT_ID")
    api.message("hello", chat_id=-100123, username="desk")

    result = run(["telegram", "test"])

    assert result.exit_code == 1
    assert "chat -100123: desk wrote to the bot" in result.stdout
    assert api.sent == []
