"""A generic webhook: POST the alert as JSON (``notify.webhook_url`` in the config).

The body is ``{"source": ..., "text": ..., **fields}``, written by ``domain.jsonable``:
times as ISO-8601 UTC with ``Z``, Decimals as strings. The URL may carry a secret
path, so the whole URL is masked in every error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
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
    payload: Mapping[str, Any],
    *,
    retries: int = DEFAULT_RETRIES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    backoff_s: float = DEFAULT_BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> NotifyResult:
    """POST ``payload`` to ``url``; never raises. A URL may carry a secret path: it is masked."""
    return post_json(
        CHANNEL,
        url,
        payload,
        secrets=[url],
        retries=retries,
        timeout_s=timeout_s,
        backoff_s=backoff_s,
        sleep=sleep,
    )
