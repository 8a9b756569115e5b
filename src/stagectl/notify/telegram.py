"""Telegram Bot API ``sendMessage`` (seed 003 §6.2).

The token and chat id come from the environment
(``FUTURES_TELEGRAM_BOT_TOKEN``, ``FUTURES_TELEGRAM_CHAT_ID``; the config names
the variables). The token is part of the request URL, so it is masked in every
error and never logged. ``api_base`` defaults to the official API; tests point
it at a loopback server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from stagectl.notify._http import (
    DEFAULT_BACKOFF_S,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    NotifyResult,
    post_json,
)

API_BASE = "https://api.telegram.org"
CHANNEL = "telegram"
MAX_MESSAGE_CHARS = 4000


def send_message(
    text: str,
    *,
    token: str,
    chat_id: str,
    api_base: str = API_BASE,
    retries: int = DEFAULT_RETRIES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    backoff_s: float = DEFAULT_BACKOFF_S,
    sleep: Callable[[float], None] | None = None,
) -> NotifyResult:
    """Send ``text`` to ``chat_id``; never raises (see :func:`post_json`)."""
    url = f"{api_base.rstrip('/')}/bot{token}/sendMessage"
    payload = {"chat_id": chat_id, "text": text[:MAX_MESSAGE_CHARS]}
    extra = {} if sleep is None else {"sleep": sleep}
    return post_json(
        CHANNEL,
        url,
        payload,
        secrets=[token],
        retries=retries,
        timeout_s=timeout_s,
        backoff_s=backoff_s,
        **extra,
    )


def send_from_env(
    text: str,
    env: Mapping[str, str],
    *,
    token_env: str,
    chat_id_env: str,
    api_base: str = API_BASE,
    retries: int = DEFAULT_RETRIES,
    backoff_s: float = DEFAULT_BACKOFF_S,
) -> NotifyResult:
    """Send with the credentials named by the config; ``skipped`` when they are not set."""
    token = env.get(token_env, "")
    chat_id = env.get(chat_id_env, "")
    missing = [name for name, value in ((token_env, token), (chat_id_env, chat_id)) if not value]
    if missing:
        return NotifyResult(CHANNEL, "skipped", 0, f"{' and '.join(missing)} not set")
    return send_message(
        text, token=token, chat_id=chat_id, api_base=api_base, retries=retries, backoff_s=backoff_s
    )
