"""Pre-trade guards of the market maker (seed 004): each check returns None or a Denial.

All inputs are plain values; nothing reads a clock. Prices are quote per base, quantities
are base units, and the side of a quote is ``buy`` (bid) or ``sell`` (ask).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from stagectl.domain.types import Side

PRICE_BAND = "PRICE_BAND"
CROSSED_BOOK = "CROSSED_BOOK"
QUOTE_CROSSES_BOOK = "QUOTE_CROSSES_BOOK"
INVENTORY_UNITS = "INVENTORY_UNITS"
INVENTORY_NOTIONAL = "INVENTORY_NOTIONAL"
CANCEL_RATE = "CANCEL_RATE"
NO_MARKET_DATA = "NO_MARKET_DATA"

_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class Denial:
    """A refused action: a stable machine ``code`` and a readable ``reason``."""

    code: str
    reason: str


def check_price_band(price: Decimal, mid: Decimal, band_bps: Decimal) -> Denial | None:
    """Deny when ``|price - mid| / mid * 10_000 > band_bps`` (the band edge is allowed)."""
    if mid <= 0:
        return Denial(NO_MARKET_DATA, f"no usable mid price ({mid})")
    distance_bps = abs(price - mid) / mid * _BPS
    if distance_bps > band_bps:
        return Denial(
            PRICE_BAND,
            f"price {price} is {distance_bps:.2f} bps from mid {mid}, band is {band_bps} bps",
        )
    return None


def check_crossed_book(best_bid: Decimal, best_ask: Decimal) -> Denial | None:
    """Deny quoting into a crossed or locked book (``best_bid >= best_ask``)."""
    if best_bid >= best_ask:
        return Denial(CROSSED_BOOK, f"book is crossed or locked: bid {best_bid} >= ask {best_ask}")
    return None


def check_quote_crosses(
    side: Side, price: Decimal, best_bid: Decimal, best_ask: Decimal
) -> Denial | None:
    """Deny a maker quote that would trade on arrival: a bid at or above the best ask, or an
    ask at or below the best bid (it would cross the book and pay the taker fee)."""
    if side == "buy" and price >= best_ask:
        return Denial(QUOTE_CROSSES_BOOK, f"bid {price} would cross the best ask {best_ask}")
    if side == "sell" and price <= best_bid:
        return Denial(QUOTE_CROSSES_BOOK, f"ask {price} would cross the best bid {best_bid}")
    return None


def check_inventory(
    inventory_units: Decimal,
    side: Side,
    qty: Decimal,
    mid: Decimal,
    *,
    max_position_units: Decimal,
    max_inventory_notional: Decimal,
) -> Denial | None:
    """Deny an order whose fill would leave ``|inventory|`` above either limit.

    The position after the fill is ``inventory + qty`` (buy) or ``inventory - qty`` (sell);
    its notional is ``|position| * mid``. An order that reduces ``|inventory|`` is always
    allowed, so a book already beyond a limit can still be worked back inside it.
    """
    after = inventory_units + qty if side == "buy" else inventory_units - qty
    if abs(after) <= abs(inventory_units):
        return None
    if abs(after) > max_position_units:
        return Denial(
            INVENTORY_UNITS,
            f"position would be {after} units, limit is {max_position_units}",
        )
    notional = abs(after) * mid
    if notional > max_inventory_notional:
        return Denial(
            INVENTORY_NOTIONAL,
            f"position notional would be {notional}, limit is {max_inventory_notional}",
        )
    return None


class CancelRateLimiter:
    """Cancel-rate discipline over a rolling window (seed 004: 60 s).

    ``allow(now_s)`` asks whether one more cancel fits: at most ``max_cancels`` cancels in
    any half-open window ``(now_s - window_s, now_s]``. ``record(now_s)`` books a cancel that
    was sent. Times are seconds on any monotonic scale the caller chooses, never read here.
    """

    def __init__(self, max_cancels: int, window_s: float = 60.0) -> None:
        if max_cancels < 0 or window_s <= 0:
            raise ValueError("max_cancels must be >= 0 and window_s > 0")
        self.max_cancels = max_cancels
        self.window_s = window_s
        self._times: deque[float] = deque()

    def _expire(self, now_s: float) -> None:
        if self._times and now_s < self._times[-1]:
            raise ValueError(f"time went backwards: {now_s} < {self._times[-1]}")
        while self._times and self._times[0] <= now_s - self.window_s:
            self._times.popleft()

    def count(self, now_s: float) -> int:
        """Cancels recorded in ``(now_s - window_s, now_s]``."""
        self._expire(now_s)
        return len(self._times)

    def allow(self, now_s: float) -> Denial | None:
        used = self.count(now_s)
        if used >= self.max_cancels:
            retry_s = self._times[0] + self.window_s - now_s if self._times else self.window_s
            return Denial(
                CANCEL_RATE,
                f"{used} cancels in the last {self.window_s:g} s (limit {self.max_cancels}); "
                f"next allowed in {retry_s:.3f} s",
            )
        return None

    def record(self, now_s: float) -> None:
        self._expire(now_s)
        self._times.append(now_s)
