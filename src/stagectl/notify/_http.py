"""POST with retries and backoff; never raises, never reveals a secret.

``post_json`` tries up to ``1 + retries`` times (seed 003 §7: API failures are
retried 3 times, then alert), sleeping ``backoff_s * 2**k`` between attempts.
A 2xx answer is success; anything else (HTTP error, timeout, refused
connection) is retried. Error texts are built from the status code or the
exception class only, and every secret passed in ``secrets`` is masked, so a
bot token embedded in a URL cannot leak through an exception message.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 0.5


@dataclass(frozen=True)
class NotifyResult:
    """What happened to one notification: ``sent``, ``failed`` or ``skipped``."""

    channel: str
    status: str
    attempts: int
    error: str | None = None

    @property
    def sent(self) -> bool:
        return self.status == "sent"

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
        }


def mask(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def post_json(
    channel: str,
    url: str,
    payload: dict[str, Any],
    *,
    secrets: Sequence[str] = (),
    retries: int = DEFAULT_RETRIES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    backoff_s: float = DEFAULT_BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> NotifyResult:
    """POST ``payload`` as JSON to ``url``; retry on any failure; never raise."""
    data = json.dumps(payload).encode()
    error = "not attempted"
    attempts = 0
    for attempt in range(max(retries, 0) + 1):
        if attempt:
            sleep(backoff_s * 2 ** (attempt - 1))
        attempts += 1
        try:
            request = urllib.request.Request(
                url, data=data, headers={"Content-Type": "application/json"}, method="POST"
            )
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                status = int(response.status)
            if 200 <= status < 300:
                return NotifyResult(channel, "sent", attempts)
            error = f"HTTP {status}"
        except urllib.error.HTTPError as failure:
            error = f"HTTP {failure.code}"
        except urllib.error.URLError as failure:
            error = f"connection failed ({type(failure.reason).__name__})"
        except (TimeoutError, OSError, ValueError) as failure:
            error = f"request failed ({type(failure).__name__})"
    return NotifyResult(channel, "failed", attempts, mask(error, secrets))
