"""Bounded exponential backoff for exchange calls (no ccxt here: pure policy)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` tries in all; the wait before retry ``n`` (1-based) is
    ``min(max_backoff_s, base_backoff_s * 2 ** (n - 1))``, or the server's
    ``Retry-After`` when it asks for longer, still capped at ``max_backoff_s``.

    ``in_flight_s``: how long a create-order that failed without a clear refusal
    (network error, timeout, 5xx) may still land at the exchange. ccxt signs Binance
    requests with a 10 s ``recvWindow`` and the exchange refuses one it processes
    later, so 12 s after the attempt was sent a lookup by client order id that finds
    nothing means the order was never placed and never will be."""

    max_attempts: int = 4
    base_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    in_flight_s: float = 12.0

    def delay_s(self, retry_number: int, retry_after_s: float | None = None) -> float:
        delay = self.base_backoff_s * 2.0 ** (retry_number - 1)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return float(min(self.max_backoff_s, delay))


Sleep = Callable[[float], None]
DEFAULT_SLEEP: Sleep = time.sleep
