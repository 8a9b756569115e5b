"""Telegram Bot API: ``sendMessage`` for alerts (seed 003 §6.2); ``getUpdates`` and
``getMe`` for the on-call bot (``stagectl telegram serve``).

The token and chat id come from the environment
(``FUTURES_TELEGRAM_BOT_TOKEN``, ``FUTURES_TELEGRAM_CHAT_ID``; the config names
the variables), the token else from ``notify.telegram.bot_token_file`` (mode 0600).
The token is part of the request URL, so it is masked in every error and never logged.
``api_base`` defaults to the official API (``STAGECTL_TELEGRAM_API_BASE`` overrides it;
tests point it at a loopback server).

A rate-limited request (429) says how long to wait in its JSON body,
``{"ok": false, "error_code": 429, "parameters": {"retry_after": N}}``; that wait,
else the ``Retry-After`` header, is what :func:`post_json` honours.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagectl.notify._http import (
    DEFAULT_BACKOFF_S,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    NotifyResult,
    call_json,
    post_json,
    retry_after_header,
    seconds,
    skipped,
)
from stagectl.notify._secrets import UnsafeFile, mask, read_owner_only

if TYPE_CHECKING:
    from stagectl.config.risk_guard import TelegramConfig

API_BASE = "https://api.telegram.org"
API_BASE_ENV = "STAGECTL_TELEGRAM_API_BASE"
CHANNEL = "telegram"
MAX_MESSAGE_CHARS = 4000
TOKEN_REFUSED = (401, 404)
"""The Bot API's answers to a wrong or revoked token: asking again cannot help."""
POLL_SLACK_S = 10.0
"""How much longer than the long poll the HTTP read may take before it counts as lost."""


def retry_after(headers: Mapping[str, str], body: bytes) -> float | None:
    """``parameters.retry_after`` of the Bot API's error body, else ``Retry-After``."""
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        answer = None
    parameters = answer.get("parameters") if isinstance(answer, dict) else None
    wait = seconds(parameters.get("retry_after")) if isinstance(parameters, dict) else None
    return wait if wait is not None else retry_after_header(headers, body)


def send_message(
    text: str,
    *,
    token: str,
    chat_id: str,
    api_base: str = API_BASE,
    retries: int = DEFAULT_RETRIES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    backoff_s: float = DEFAULT_BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> NotifyResult:
    """Send ``text`` to ``chat_id``; never raises (see :func:`post_json`)."""
    url = f"{api_base.rstrip('/')}/bot{token}/sendMessage"
    payload = {"chat_id": chat_id, "text": text[:MAX_MESSAGE_CHARS]}
    return post_json(
        CHANNEL,
        url,
        payload,
        secrets=[token],
        retries=retries,
        timeout_s=timeout_s,
        backoff_s=backoff_s,
        retry_after=retry_after,
        sleep=sleep,
    )


class TokenUnusable(Exception):
    """The configured bot token file cannot be used (unreadable, readable by others, or
    empty); the message names the file and says what to do."""


def bot_token(
    section: TelegramConfig, env: Mapping[str, str], base_dir: Path | None
) -> tuple[str, str] | None:
    """The bot token and where it came from: the environment variable the config names,
    else ``bot_token_file`` (owner-only; a relative path is taken from ``base_dir``, the
    home). None when neither is set; TokenUnusable when the file cannot be used. The one
    lookup of the alerts and the on-call bot."""
    token = env.get(section.bot_token_env, "").strip()
    if token:
        return token, section.bot_token_env
    if section.bot_token_file is None:
        return None
    path = Path(section.bot_token_file).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        token = read_owner_only(path).strip()
    except UnsafeFile as error:
        raise TokenUnusable(str(error)) from None
    if not token:
        raise TokenUnusable(f"{path} is empty")
    return token, str(path)


def send_configured(
    text: str,
    section: TelegramConfig,
    env: Mapping[str, str],
    *,
    base_dir: Path | None = None,
    api_base: str | None = None,
    retries: int = DEFAULT_RETRIES,
    backoff_s: float = DEFAULT_BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> NotifyResult:
    """Send with the credentials the config names (:func:`bot_token`, the chat id's
    variable); ``skipped`` when they are not set, ``failed`` when the token file cannot be
    used. The API base is ``api_base``, else ``STAGECTL_TELEGRAM_API_BASE``, else the
    official."""
    try:
        found = bot_token(section, env, base_dir)
    except TokenUnusable as error:
        return NotifyResult(CHANNEL, "failed", 0, f"notify.telegram.bot_token_file: {error}")
    chat_id = env.get(section.chat_id_env, "")
    token_names = section.bot_token_env
    if section.bot_token_file is not None:
        token_names += " or notify.telegram.bot_token_file"
    missing = [
        name for name, value in ((token_names, found), (section.chat_id_env, chat_id)) if not value
    ]
    if missing or found is None:
        return skipped(CHANNEL, f"{' and '.join(missing)} not set")
    token = found[0]
    return send_message(
        text,
        token=token,
        chat_id=chat_id,
        api_base=api_base or env.get(API_BASE_ENV) or API_BASE,
        retries=retries,
        backoff_s=backoff_s,
        sleep=sleep,
    )


@dataclass(frozen=True)
class Polled:
    """One ``getUpdates`` (or ``getMe``): the result, or why not. ``final``: the token was
    refused (401, 404), so the same call would fail again; anything else (a 409 while
    another poller runs, a 5xx, no connection) may pass later. ``wait``: the seconds a
    429 asked for."""

    result: Any = None
    error: str | None = None
    final: bool = False
    wait: float | None = None

    @property
    def updates(self) -> list[dict[str, Any]]:
        """The updates of a getUpdates answer, each a JSON object."""
        found = self.result if isinstance(self.result, list) else []
        return [u for u in found if isinstance(u, dict) and isinstance(u.get("update_id"), int)]


def bot_id(token: str) -> str:
    """The bot's numeric id, the part of the token before the colon (not a secret)."""
    head, _, _ = token.partition(":")
    return head if head.isdigit() else "unknown"


def get_updates(
    *, token: str, offset: int | None, timeout_s: int, api_base: str = API_BASE
) -> Polled:
    """One long poll: the messages after ``offset - 1`` (Telegram forgets the ones before
    it), waiting up to ``timeout_s`` for one; never raises."""
    payload: dict[str, Any] = {"timeout": timeout_s, "allowed_updates": ["message"]}
    if offset is not None:
        payload["offset"] = offset
    return _call(token, "getUpdates", payload, api_base, timeout_s + POLL_SLACK_S)


def get_me(*, token: str, api_base: str = API_BASE) -> Polled:
    """The bot's own account (``id``, ``username``): checks the token."""
    return _call(token, "getMe", {}, api_base, DEFAULT_TIMEOUT_S)


def _call(
    token: str, method: str, payload: dict[str, Any], api_base: str, timeout: float
) -> Polled:
    url = f"{api_base.rstrip('/')}/bot{token}/{method}"
    answer = call_json(url, payload, timeout_s=timeout, retry_after=retry_after)
    if answer.error is not None:
        refused = answer.status in TOKEN_REFUSED
        return Polled(error=mask(answer.error, [token]), final=refused, wait=answer.wait)
    try:
        document = json.loads(answer.body)
    except (ValueError, UnicodeDecodeError):
        return Polled(error=f"{method}: the answer is not JSON")
    if not isinstance(document, dict) or document.get("ok") is not True:
        return Polled(error=f"{method}: the Bot API answered ok=false")
    return Polled(result=document.get("result"))
