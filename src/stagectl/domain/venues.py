"""Venue scoring: seed 001 #8's smart-router formula over what each venue quotes.

``score = 0.3 spread + 0.2 queue + 0.2 latency + 0.15 reliability + 0.15 size``, each
sub-score in [0, 1] (1 best). Every sub-score is an absolute function of one venue's own
quote (a fixed scale, never "relative to the worst venue"), so adding or dropping a venue
never changes another venue's score. docs/execution.md states the normalisations:

- **spread**: the cost of crossing at the touch, half the spread plus the taker fee, in
  bps of the mid: ``max(0, 1 - cost_bps / 20)``. The fee belongs here because the
  formula has no other place for it and a taker pays both;
- **queue**: a passive order joins the back of its own side's best level:
  ``order_qty / (order_qty + qty_ahead)``, the share of that level the order would be;
- **latency**: ``max(0, 1 - latency_ms / 1000)``; an unmeasured latency (a recorded
  snapshot) scores a neutral 0.5;
- **reliability**: the venue's recent success rate itself (order outcomes, else probes);
- **size**: the share of the order a taker fills within 10 bps of the touch on the
  opposite side, ``min(1, fillable_qty / order_qty)``.

A venue that does not list the symbol, could not be asked, or whose book lacks the side
the score needs is excluded with its reason. Ties rank by venue name. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from stagectl.domain.types import Side

WEIGHTS: dict[str, float] = {
    "spread": 0.3,
    "queue": 0.2,
    "latency": 0.2,
    "reliability": 0.15,
    "size": 0.15,
}
"""Seed 001 #8's weights of the sub-scores (they sum to 1)."""

_BPS = Decimal(10_000)


@dataclass(frozen=True)
class ScoreScales:
    """The fixed scales that map each raw input onto [0, 1]."""

    spread_cost_cap_bps: float = 20.0
    """Crossing cost (half spread + taker fee) at which the spread score reaches 0."""
    latency_cap_ms: float = 1000.0
    """Latency at which the latency score reaches 0."""
    unknown_latency_score: float = 0.5
    """The latency score of a venue whose latency was not measured (a recorded book)."""
    size_band_bps: float = 10.0
    """How far from the touch the size score counts the opposite side's depth."""


@dataclass(frozen=True)
class BookLevel:
    """One price level: the price and the quantity (base units) resting there."""

    price: Decimal
    qty: Decimal


@dataclass(frozen=True)
class VenueQuote:
    """What one venue offers for one symbol at one moment."""

    venue: str
    symbol: str
    bids: tuple[BookLevel, ...] = ()
    """Best (highest) first."""
    asks: tuple[BookLevel, ...] = ()
    """Best (lowest) first."""
    taker_fee: Decimal = Decimal(0)
    """A fraction of the notional (0.0004 = 4 bps)."""
    maker_fee: Decimal = Decimal(0)
    latency_ms: float | None = None
    """The measured round trip of the book request; None when not measured."""
    reliability: float = 1.0
    """The venue's recent success rate, in [0, 1]."""
    reliability_basis: str = "assumed"
    """Where ``reliability`` comes from: recent orders, probes, or assumed."""
    lists_symbol: bool = True
    unavailable: str | None = None
    """Why the venue could not be asked (unreachable, refused); None when it answered."""
    source: str = ""
    """Where the quote comes from (a file and snapshot time, or the exchange)."""

    @property
    def mid(self) -> Decimal | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0].price + self.asks[0].price) / 2

    @property
    def spread_bps(self) -> float | None:
        mid = self.mid
        if mid is None or mid <= 0:
            return None
        return float((self.asks[0].price - self.bids[0].price) / mid * _BPS)


@dataclass(frozen=True)
class SubScores:
    """The five sub-scores, each in [0, 1]."""

    spread: float
    queue: float
    latency: float
    reliability: float
    size: float

    @property
    def total(self) -> float:
        """The weighted sum with seed 001's weights."""
        return (
            WEIGHTS["spread"] * self.spread
            + WEIGHTS["queue"] * self.queue
            + WEIGHTS["latency"] * self.latency
            + WEIGHTS["reliability"] * self.reliability
            + WEIGHTS["size"] * self.size
        )


@dataclass(frozen=True)
class VenueScore:
    """One venue's score with the inputs it came from, or why it was excluded."""

    venue: str
    score: float | None
    sub_scores: SubScores | None
    excluded: str | None = None
    spread_bps: float | None = None
    crossing_cost_bps: float | None = None
    order_qty: Decimal | None = None
    qty_ahead: Decimal | None = None
    fillable_qty: Decimal | None = None
    latency_ms: float | None = None
    reliability: float | None = None
    reliability_basis: str = ""
    source: str = ""


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def spread_score(crossing_cost_bps: float, scales: ScoreScales = ScoreScales()) -> float:
    """1 for a free crossing, 0 at the cap and beyond."""
    return _clip(1.0 - crossing_cost_bps / scales.spread_cost_cap_bps)


def queue_score(order_qty: Decimal, qty_ahead: Decimal) -> float:
    """The share of the joined level the order would be: 1 with nobody ahead."""
    if order_qty <= 0:
        return 1.0
    return _clip(float(order_qty / (order_qty + max(qty_ahead, Decimal(0)))))


def latency_score(latency_ms: float | None, scales: ScoreScales = ScoreScales()) -> float:
    if latency_ms is None:
        return scales.unknown_latency_score
    return _clip(1.0 - max(latency_ms, 0.0) / scales.latency_cap_ms)


def size_score(order_qty: Decimal, fillable_qty: Decimal) -> float:
    """The share of the order the opposite side fills within the band (capped at 1)."""
    if order_qty <= 0:
        return 1.0
    return _clip(float(fillable_qty / order_qty))


def fillable_within(levels: tuple[BookLevel, ...], side: Side, band_bps: float) -> Decimal:
    """The quantity resting within ``band_bps`` of the best level of ``levels`` (the side a
    ``side`` taker trades against: asks for a buy, bids for a sell)."""
    if not levels:
        return Decimal(0)
    band = Decimal(str(band_bps)) / _BPS
    best = levels[0].price
    if side is Side.BUY:
        limit = best * (1 + band)
        return sum((lv.qty for lv in levels if lv.price <= limit), Decimal(0))
    limit = best * (1 - band)
    return sum((lv.qty for lv in levels if lv.price >= limit), Decimal(0))


def _exclusion(quote: VenueQuote) -> str | None:
    if quote.unavailable is not None:
        return quote.unavailable
    if not quote.lists_symbol:
        return f"does not list {quote.symbol}"
    if not quote.bids or not quote.asks:
        missing = "bids" if not quote.bids else "asks"
        return f"book has no {missing}: spread unknown"
    if quote.mid is None or quote.mid <= 0:
        return "book has no positive mid price"
    return None


def score_venue(
    quote: VenueQuote, side: Side, notional: Decimal, scales: ScoreScales = ScoreScales()
) -> VenueScore:
    """One venue's sub-scores and score for a ``side`` order of ``notional`` (quote ccy)."""
    reason = _exclusion(quote)
    if reason is not None:
        return VenueScore(quote.venue, None, None, excluded=reason, source=quote.source)
    mid = quote.mid
    spread = quote.spread_bps
    assert mid is not None and spread is not None  # _exclusion checked both
    order_qty = notional / mid
    own, opposite = (quote.bids, quote.asks) if side is Side.BUY else (quote.asks, quote.bids)
    cost = spread / 2 + float(quote.taker_fee * _BPS)
    fillable = fillable_within(opposite, side, scales.size_band_bps)
    subs = SubScores(
        spread=spread_score(cost, scales),
        queue=queue_score(order_qty, own[0].qty),
        latency=latency_score(quote.latency_ms, scales),
        reliability=_clip(quote.reliability),
        size=size_score(order_qty, fillable),
    )
    return VenueScore(
        venue=quote.venue,
        score=subs.total,
        sub_scores=subs,
        spread_bps=spread,
        crossing_cost_bps=cost,
        order_qty=order_qty,
        qty_ahead=own[0].qty,
        fillable_qty=fillable,
        latency_ms=quote.latency_ms,
        reliability=quote.reliability,
        reliability_basis=quote.reliability_basis,
        source=quote.source,
    )


def score_venues(
    quotes: list[VenueQuote],
    side: Side,
    notional: Decimal,
    scales: ScoreScales = ScoreScales(),
) -> list[VenueScore]:
    """Every venue's score, best first (ties by venue name), the excluded ones last
    (by name) with their reasons. ``notional`` must be positive."""
    if notional <= 0:
        raise ValueError("notional must be positive")
    scored = [score_venue(q, side, notional, scales) for q in quotes]
    ranked = sorted(
        (s for s in scored if s.score is not None), key=lambda s: (-(s.score or 0.0), s.venue)
    )
    excluded = sorted((s for s in scored if s.score is None), key=lambda s: s.venue)
    return ranked + excluded
