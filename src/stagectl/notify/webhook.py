"""A generic webhook: POST the alert as JSON (``notify.webhook_url`` in the config)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stagectl.notify._http import (
    DEFAULT_BACKOFF_S,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    NotifyResult,
    post_json,
)

CHANNEL = "webhook"


def post_alert(
    url: str,
    payload: dict[str, Any],
    *,
    retries: int = DEFAULT_RETRIES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    backoff_s: float = DEFAULT_BACKOFF_S,
    sleep: Callable[[float], None] | None = None,
) -> NotifyResult:
    """POST ``payload`` to ``url``; never raises. A URL may carry a secret path: it is masked."""
    extra = {} if sleep is None else {"sleep": sleep}
    return post_json(
        CHANNEL,
        url,
        payload,
        secrets=[url],
        retries=retries,
        timeout_s=timeout_s,
        backoff_s=backoff_s,
        **extra,
    )
