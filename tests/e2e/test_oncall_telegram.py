"""On-call from Telegram as docs/operations.md sets it up: the token in the environment,
the chat id found with `telegram test`, the bot run as a service would run it, a /halt
answered from the phone, and a clean stop on SIGTERM. The Bot API is a loopback stub."""

from __future__ import annotations

import signal
import subprocess
import time

from tests.bot_api_stub import TOKEN, BotApi, serve_bot_api
from tests.e2e.conftest import STAGECTL, Operator

CHAT = -1001234567890
HANG_GUARD_S = 60.0


def _reply(api: BotApi, count: int) -> str:
    """The ``count``-th reply, once the bot has sent it (a stuck bot fails the test)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while len(api.sent) < count:
        assert time.monotonic() < deadline, f"no reply {count}: {api.texts()}"
        time.sleep(0.01)
    return api.texts()[count - 1]


def test_the_desk_halts_trading_from_telegram_and_stops_the_bot_cleanly(
    operator: Operator,
) -> None:
    with serve_bot_api() as api:
        # 1. the BotFather's token, in the environment file every service reads
        operator.env["FUTURES_TELEGRAM_BOT_TOKEN"] = TOKEN
        operator.env["STAGECTL_TELEGRAM_API_BASE"] = api.url

        # 2. the chat id: message the bot, then `telegram test` lists the chat
        api.message("hello", chat_id=CHAT, username="desk")
        listed = operator("telegram", "test", expect=1)
        assert f"chat {CHAT}: desk wrote to the bot" in listed.stdout, listed
        operator.env["FUTURES_TELEGRAM_CHAT_ID"] = str(CHAT)
        checked = operator("telegram", "test")
        assert f"chat {CHAT}: sent" in checked.stdout, checked

        # 3. the service: `stagectl telegram serve`, as the systemd unit starts it
        bot = subprocess.Popen(
            [str(STAGECTL), "telegram", "serve"],
            cwd=operator.home,
            env=operator.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            sent = len(api.sent)
            api.message("/status", chat_id=CHAT)
            assert "paper: ACTIVE" in _reply(api, sent + 1)
            api.message("/halt exchange incident", chat_id=CHAT)
            assert "Send /yes within 60 s" in _reply(api, sent + 2)
            api.message("/yes", chat_id=CHAT)
            assert _reply(api, sent + 3) == "paper: ACTIVE -> HALTED\nlive: ACTIVE -> HALTED"

            bot.send_signal(signal.SIGTERM)
            _, stderr = bot.communicate(timeout=HANG_GUARD_S)
        finally:
            if bot.poll() is None:
                bot.kill()
                bot.wait()

    assert bot.returncode == 130, stderr
    status = operator("trading", "status", "--json").json()
    assert {m: s["trading_state"] for m, s in status["modes"].items()} == {
        "paper": "HALTED",
        "live": "HALTED",
    }
    assert status["modes"]["live"]["source"] == "telegram"
    assert TOKEN not in stderr
