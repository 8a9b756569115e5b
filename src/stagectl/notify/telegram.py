"""Telegram Bot API ``sendMessage`` (seed 003 §6.2).

The token and chat id come from the environment
(``FUTURES_TELEGRAM_BOT_TOKEN``, ``FUTURES_TELEGRAM_CHAT_ID``; the config names
the variables). The token is part of the request URL, so it is masked in every
error and never logged. ``api_base`` defaults to the official API
(``STAGECTL_TELEGRAM_API_BASE`` overrides it; tests point it at a loopback server).

A rate-limited request (429) says how long to wait in its JSON body,
``{"ok": false, "error_code": 429, "parameters": {"retry_after": N}}``; that wait,
else the ``Retry-After`` header, is what :func:`post_json` honours.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

from stagectl.notify._http import (
    DEFAULT_BACKOFF_S,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    NotifyResult,
    post_json,
    retry_after_header,
    seconds,
    skipped,
)

API_BASE = "https://api.telegram.org"
API_BASE_ENV = "STAGECTL_TELEGRAM_API_BASE"
CHANNEL = "telegram"
MAX_MESSAGE_CHARS = 4000


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


def send_from_env(
    text: str,
    env: Mapping[str, str],
    *,
    token_env: str,
    chat_id_env: str,
    api_base: str | None = None,
    retries: int = DEFAULT_RETRIES,
    backoff_s: float = DEFAULT_BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> NotifyResult:
    """Send with the credentials named by the config; ``skipped`` when they are not set.
    The API base is ``api_base``, else ``STAGECTL_TELEGRAM_API_BASE``, else the official."""
    token = env.get(token_env, "")
    chat_id = env.get(chat_id_env, "")
    missing = [name for name, value in ((token_env, token), (chat_id_env, chat_id)) if not value]
    if missing:
        return skipped(CHANNEL, f"{' and '.join(missing)} not set")
    return send_message(
        text,
        token=token,
        chat_id=chat_id,
        api_base=api_base or env.get(API_BASE_ENV) or API_BASE,
        retries=retries,
        backoff_s=backoff_s,
        sleep=sleep,
    )
