"""``stagectl telegram test``: is the token good, and does a message reach each chat?

``getMe`` checks the token; a ``sendMessage`` to each configured chat checks the chat
ids (a chat the bot was never started in refuses it). With no chat configured it lists
the chats whose messages wait for the bot (a ``getUpdates`` without an offset, which
takes nothing), so the operator finds the chat id without putting the token in a URL.
Nothing is recorded in the state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.errors import ExternalError
from stagectl.notify import telegram
from stagectl.services.telegram import settings as bot_settings

TEXT = "stagectl telegram test: this chat receives alerts and may send on-call commands."


@dataclass(frozen=True)
class CheckRequest:
    """The guard config holding ``notify.telegram`` (None: the home's)."""

    config: Path | None = None


@dataclass(frozen=True)
class CheckResult:
    """The bot's account and, per chat, whether the test message went through."""

    bot_id: str
    username: str | None
    token_source: str
    chats: dict[int, str | None]
    """Chat id -> None when the message was sent, else the masked error."""
    seen: dict[int, str] = field(default_factory=dict)
    """With no chat configured: the chats that wrote to the bot, with a label."""

    @property
    def passed(self) -> bool:
        return bool(self.chats) and all(error is None for error in self.chats.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "bot_id": self.bot_id,
            "username": self.username,
            "token_source": self.token_source,
            "chats": [{"chat_id": c, "sent": e is None, "error": e} for c, e in self.chats.items()],
            "seen_chats": [{"chat_id": c, "label": label} for c, label in self.seen.items()],
            "passed": self.passed,
        }


def run(request: CheckRequest, *, home: Home, env: Mapping[str, str] | None = None) -> CheckResult:
    """Check the token (ExternalError, exit 3, when refused) and message every chat;
    ``env`` holds the token and chat id (default: the process environment)."""
    environment = os.environ if env is None else env
    found = bot_settings.load(home, request.config, environment, require_chat=False)
    me = telegram.get_me(token=found.token, api_base=found.api_base)
    if me.error is not None:
        raise ExternalError(f"getMe failed ({me.error}): check {found.token_source}", where="getMe")
    account = me.result if isinstance(me.result, dict) else {}
    username = account.get("username")
    chats: dict[int, str | None] = {}
    for chat_id in sorted(found.chat_ids):
        sent = telegram.send_message(
            TEXT,
            token=found.token,
            chat_id=str(chat_id),
            api_base=found.api_base,
            retries=found.retries,
        )
        chats[chat_id] = None if sent.sent else sent.error or sent.status
    return CheckResult(
        found.bot_id,
        username if isinstance(username, str) else None,
        found.token_source,
        chats,
        {} if found.chat_ids else _seen(found),
    )


def _seen(found: bot_settings.BotSettings) -> dict[int, str]:
    """The chats of the messages waiting for the bot, each with its title or sender."""
    polled = telegram.get_updates(
        token=found.token, offset=None, timeout_s=0, api_base=found.api_base
    )
    seen: dict[int, str] = {}
    for update in polled.updates:
        message = update.get("message")
        chat = message.get("chat") if isinstance(message, dict) else None
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            sender = message.get("from") if isinstance(message, dict) else None
            by = sender.get("username") if isinstance(sender, dict) else None
            seen[chat["id"]] = str(chat.get("title") or chat.get("username") or by or "")
    return seen
