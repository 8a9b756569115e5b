"""Where the on-call bot's settings come from: the risk guard config's
``notify.telegram`` section, the token from the environment or an owner-only file.

The token is never an argument, never printed and never logged: every error that could
carry it is masked (``notify.telegram``), and the file holding it must be mode 0600.
The bot answers the alert chat (the chat id in ``chat_id_env``) and
``command_chat_ids``; at least one must be set. ``STAGECTL_TELEGRAM_API_BASE`` points
it at another Bot API server (tests and docs use a loopback stub).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from stagectl.config.home import Home
from stagectl.config.risk_guard import NotifyConfig, TelegramConfig
from stagectl.errors import InputError, StagectlError
from stagectl.notify import telegram


@dataclass(frozen=True)
class BotSettings:
    """What the bot needs: its token (a secret: ``repr`` leaves it out), the chats it
    answers, where the Bot API is and its timings."""

    token: str
    chat_ids: frozenset[int]
    api_base: str
    poll_timeout_s: int
    confirm_within: timedelta
    command_max_age: timedelta
    retries: int
    token_source: str

    def __repr__(self) -> str:
        return f"BotSettings(bot {self.bot_id}, chats {sorted(self.chat_ids)})"

    @property
    def bot_id(self) -> str:
        return telegram.bot_id(self.token)


def load(
    home: Home, config: Path | None, env: Mapping[str, str], *, require_chat: bool = True
) -> BotSettings:
    """The bot's settings; InputError (exit 2) naming what is missing or unsafe (no chat
    at all only when ``require_chat``: ``telegram test`` helps find the chat id)."""
    notify = _notify(home, config)
    section = notify.telegram
    token, source = _token(home, section, env)
    chats = set(section.command_chat_ids)
    alert_chat = env.get(section.chat_id_env, "").strip()
    if alert_chat:
        try:
            chats.add(int(alert_chat))
        except ValueError:
            raise InputError(
                "not a chat id (a number, negative for a group)", where=section.chat_id_env
            ) from None
    if not chats and require_chat:
        raise InputError(
            f"no chat to answer: set {section.chat_id_env} or notify.telegram.command_chat_ids",
            where="notify.telegram",
        )
    return BotSettings(
        token=token,
        chat_ids=frozenset(chats),
        api_base=env.get(telegram.API_BASE_ENV) or telegram.API_BASE,
        poll_timeout_s=section.poll_timeout_s,
        confirm_within=timedelta(seconds=section.confirm_within_s),
        command_max_age=timedelta(seconds=section.command_max_age_s),
        retries=notify.retries,
        token_source=source,
    )


def _notify(home: Home, config: Path | None) -> NotifyConfig:
    """The whole guard config's ``notify`` (errors with line numbers); when the rest of
    the file is what is broken, its ``notify`` section alone, so on-call still answers."""
    from stagectl.config.loader import load_risk_guard, load_risk_guard_notify

    try:
        return load_risk_guard(home, config)[0].notify
    except StagectlError as error:
        try:
            return load_risk_guard_notify(home, config)
        except StagectlError:
            raise error from None


def _token(home: Home, section: TelegramConfig, env: Mapping[str, str]) -> tuple[str, str]:
    """The token and where it came from (the variable's or the file's name)."""
    try:
        found = telegram.bot_token(section, env, home.root)
    except telegram.TokenUnusable as error:
        raise InputError(str(error), where="notify.telegram.bot_token_file") from None
    if found is None:
        raise InputError(
            f"no bot token: set {section.bot_token_env} or notify.telegram.bot_token_file",
            where=section.bot_token_env,
        )
    return found
