"""POST JSON with retries; never raises, never reveals a secret.

``post_json`` serialises the payload with ``domain.jsonable`` (datetimes as ISO-8601
with ``Z``, Decimals as strings, enums by value, anything else as its text); a payload
that still cannot be written as JSON is a ``failed`` result, not an exception. It then
tries up to ``1 + retries`` times (seed 003 §7: API failures are retried 3 times, then
alert):

- a 2xx answer is success;
- 429 (rate limited) is retried after the wait the server asks for (``retry_after``:
  a channel's own reading of the answer, by default the ``Retry-After`` header in
  seconds or as an HTTP date), else after the backoff; a wait longer than
  ``MAX_RETRY_AFTER_S`` is not sat out: the notification fails, saying so;
- any other answer below 500 (400, 401, 403, 404, a redirect) is final: the same
  request would be refused again;
- 5xx answers, refused connections and timeouts are retried after
  ``backoff_s * 2**k``.

Every wait goes through the injected ``sleep``. Error texts are built from the status
code or the exception class only, and every secret passed in ``secrets`` is masked, so
a bot token embedded in a URL cannot leak through an exception message.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

from stagectl.domain.jsonable import to_jsonable
from stagectl.notify._secrets import mask

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 0.5
MAX_RETRY_AFTER_S = 60.0
"""The longest wait a rate limit may ask for before stagectl gives up on the message."""
MAX_ERROR_BODY_BYTES = 65536

RetryAfter = Callable[[Mapping[str, str], bytes], float | None]
"""Reads the wait (seconds) a 429 answer asks for from its headers (names in lower
case) and body."""


@dataclass(frozen=True)
class NotifyResult:
    """What happened to one notification on one channel: ``sent``, ``failed`` (``error``
    says why) or ``skipped`` (``reason`` says why: no credentials, a duplicate)."""

    channel: str
    status: str
    attempts: int
    error: str | None = None
    reason: str | None = None

    @property
    def sent(self) -> bool:
        return self.status == "sent"

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "reason": self.reason,
        }


def skipped(channel: str, reason: str) -> NotifyResult:
    return NotifyResult(channel, "skipped", 0, reason=reason)


def encode(payload: Mapping[str, Any]) -> bytes:
    """The payload as UTF-8 JSON (``domain.jsonable``'s spelling); TypeError or
    ValueError when it cannot be written (a cycle, a key of an odd type)."""
    return json.dumps(to_jsonable(dict(payload)), allow_nan=False).encode()


def retry_after_header(
    headers: Mapping[str, str], body: bytes, *, now: Callable[[], float] = time.time
) -> float | None:
    """The ``Retry-After`` header in seconds: a number of seconds, or an HTTP date (RFC
    9110) counted from ``now`` (0 when already past); None when absent or unreadable.
    Header names arrive in lower case."""
    value = headers.get("retry-after")
    wait = seconds(value)
    if wait is not None or not isinstance(value, str):
        return wait
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322's unknown zone, UTC in HTTP dates
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now())


def seconds(value: object) -> float | None:
    """A non-negative number of seconds from a header or JSON value, else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None
    return number if number is not None and 0 <= number < float("inf") else None


MAX_ANSWER_BYTES = 8 * 1024 * 1024
"""The largest answer body read (a getUpdates of 100 long messages is well below)."""


@dataclass(frozen=True)
class Answer:
    """One attempt's outcome: done (``error`` None: a 2xx, its ``body``; or ``final``), or
    to be retried after ``wait`` seconds (None: after the caller's backoff)."""

    error: str | None
    final: bool = False
    wait: float | None = None
    body: bytes = b""
    status: int | None = None
    """The HTTP status, when an answer came."""


def post_json(
    channel: str,
    url: str,
    payload: Mapping[str, Any],
    *,
    secrets: Sequence[str] = (),
    retries: int = DEFAULT_RETRIES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    backoff_s: float = DEFAULT_BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
    retry_after: RetryAfter = retry_after_header,
) -> NotifyResult:
    """POST ``payload`` as JSON to ``url`` (see the module docstring); never raises."""
    try:
        data = encode(payload)
    except (TypeError, ValueError, RecursionError) as failure:
        error = f"the alert could not be written as JSON ({type(failure).__name__})"
        return NotifyResult(channel, "failed", 0, error)
    error = "not attempted"
    attempts = 0
    wait: float | None = None
    for attempt in range(max(retries, 0) + 1):
        if attempt:
            sleep(backoff_s * 2 ** (attempt - 1) if wait is None else wait)
        attempts += 1
        answer = _attempt(url, data, timeout_s, retry_after)
        if answer.error is None:
            return NotifyResult(channel, "sent", attempts)
        error, wait = answer.error, answer.wait
        if answer.final:
            break
    return NotifyResult(channel, "failed", attempts, mask(error, secrets))


def call_json(
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retry_after: RetryAfter = retry_after_header,
) -> Answer:
    """POST ``payload`` once and return the answer with its body (the caller retries, as
    a long-running loop must); never raises. The error text names a status code or an
    exception class only, so a secret in ``url`` cannot reach it."""
    try:
        data = encode(payload)
    except (TypeError, ValueError, RecursionError) as failure:
        return Answer(f"the request could not be written as JSON ({type(failure).__name__})", True)
    return _attempt(url, data, timeout_s, retry_after)


def _attempt(url: str, data: bytes, timeout_s: float, retry_after: RetryAfter) -> Answer:
    try:
        request = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = int(response.status)
            body = response.read(MAX_ANSWER_BYTES)
        if 200 <= status < 300:
            return Answer(None, body=body)
        return Answer(f"HTTP {status}", final=status < 500, status=status)
    except urllib.error.HTTPError as failure:
        if failure.code == 429:
            return _rate_limited(failure, retry_after)
        return Answer(f"HTTP {failure.code}", final=failure.code < 500, status=failure.code)
    except urllib.error.URLError as failure:
        return Answer(f"connection failed ({type(failure.reason).__name__})")
    except (TimeoutError, OSError, ValueError) as failure:
        return Answer(f"request failed ({type(failure).__name__})")


def _rate_limited(failure: urllib.error.HTTPError, retry_after: RetryAfter) -> Answer:
    """A 429: wait as asked (up to the cap), else back off."""
    try:
        body = failure.read(MAX_ERROR_BODY_BYTES)
    except (OSError, ValueError):
        body = b""
    headers = {k.lower(): v for k, v in (failure.headers or {}).items()}
    try:
        wait = retry_after(headers, body)
    except (TypeError, ValueError, KeyError, AttributeError):
        wait = None
    if wait is not None and wait > MAX_RETRY_AFTER_S:
        return Answer(
            f"HTTP 429: rate limited, asked to wait {wait:g} s, more than the "
            f"{MAX_RETRY_AFTER_S:g} s stagectl waits; not retried",
            final=True,
            wait=wait,
            status=429,
        )
    return Answer("HTTP 429: rate limited", wait=wait, status=429)
