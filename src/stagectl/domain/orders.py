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
    material = json.dumps([run_id, symbol, instant, intent], ensure_ascii=True)
    digest = hashlib.sha256(material.encode("ascii")).hexdigest()
    return CLIENT_ORDER_ID_PREFIX + digest[:32]
