"""Order identity.

``client_order_id`` makes the id of an order a function of why it exists (the
run, the symbol, the bar it was decided on and the intent), so a process that
restarts and decides the same order again produces the same id: the state
database (orders keyed by client_order_id) and the exchange (which rejects a
duplicate client id) both refuse to send it twice.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

CLIENT_ORDER_ID_PREFIX = "sc-"
CLIENT_ORDER_ID_MAX_LEN = 36


def client_order_id(run_id: str, symbol: str, bar_ts: datetime, intent: str) -> str:
    """A deterministic client order id: ``sc-`` + 32 hex digits (35 characters).

    The digits are the first 128 bits of SHA-256 over the JSON array
    ``[run_id, symbol, bar_ts as UTC ISO-8601 with microseconds, intent]`` (a
    JSON array, so no choice of separators can make two inputs collide). The
    result is ASCII within Binance's ``^[.A-Z:/a-z0-9_-]{1,36}$`` and under the
    36 characters most venues allow. ``bar_ts`` must be timezone-aware; equal
    instants in different zones give the same id.
    """
    if bar_ts.tzinfo is None or bar_ts.utcoffset() is None:
        raise ValueError("bar_ts must be timezone-aware")
    for label, value in (("run_id", run_id), ("symbol", symbol), ("intent", intent)):
        if not value:
            raise ValueError(f"{label} must not be empty")
    instant = bar_ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return _hashed([run_id, symbol, instant, intent])


def child_order_id(parent_id: str, index: int) -> str:
    """The client order id of slice ``index`` (0-based) of the parent order ``parent_id``.

    The same scheme as :func:`client_order_id` over the JSON array ``[parent_id, "slice",
    index]``: a restart that decides slice i of a parent again gets the same id, so the
    state database and the exchange refuse a second one."""
    if not parent_id:
        raise ValueError("parent_id must not be empty")
    if index < 0:
        raise ValueError("index must not be negative")
    return _hashed([parent_id, "slice", index])


def _hashed(material: list[object]) -> str:
    """``sc-`` + the first 128 bits of SHA-256 over ``material`` as a JSON array."""
    text = json.dumps(material, ensure_ascii=True)
    digest = hashlib.sha256(text.encode("ascii")).hexdigest()
    return CLIENT_ORDER_ID_PREFIX + digest[:32]
