"""``stagectl route``: preview the router's decision for one parent order.

Every venue is scored (``domain.venues.score_venues``), the best is chosen, and the
execution style follows seed 001's rules (``domain.execution.choose_style``) on the chosen
venue's spread. Offline by default: the bundled Binance snapshot is the only venue unless
``--book`` files or ``--exchange`` venues are named; nothing touches the network unless
an exchange is named.

Entry: ``run(RouteRequest, *, home) -> RoutePreview``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from stagectl.config.home import Home
from stagectl.data.book_snapshots import BUNDLED_BOOK
from stagectl.domain.execution import StyleChoice, StyleInputs, choose_style
from stagectl.domain.types import Side
from stagectl.domain.venues import WEIGHTS, ScoreScales, VenueQuote, VenueScore, score_venues
from stagectl.errors import ExternalError, InputError
from stagectl.services.execution.venue_inputs import (
    BookVenue,
    Reliability,
    exchange_quote,
    parse_book_venues,
    parse_exchange_venues,
    snapshot_quote,
)
from stagectl.state.db import open_state
from stagectl.state.orders import venue_order_outcomes

VOLUME_BARS = 24
"""The average bar volume of rule 1 (POV) is over the symbol's last 24 bundled 1h bars."""


@dataclass(frozen=True)
class RouteRequest:
    symbol: str
    side: Side
    notional: Decimal
    venues: tuple[str, ...] | None = None
    """Only these venue names (``--venues``); None: every venue given."""
    books: tuple[str, ...] = ()
    exchanges: str | None = None
    persistence: float = 0.0
    urgent: bool = False
    avg_bar_volume: Decimal | None = None
    """None: from the bundled 1h candles of the symbol when there are any, else unknown."""


@dataclass(frozen=True)
class RoutePreview:
    """The decision and everything it came from."""

    symbol: str
    side: Side
    notional: Decimal
    weights: dict[str, float]
    scales: ScoreScales
    scores: list[VenueScore]
    chosen: str
    style: StyleChoice
    style_inputs: StyleInputs
    avg_bar_volume_source: str


def _check(request: RouteRequest) -> None:
    if request.notional <= 0 or not request.notional.is_finite():
        raise InputError("notional must be a positive number", where="--notional")
    if not 0.0 <= request.persistence <= 1.0:
        raise InputError("persistence must be in [0, 1]", where="--persistence")
    if request.avg_bar_volume is not None and request.avg_bar_volume < 0:
        raise InputError("average bar volume must be >= 0", where="--avg-volume")
    if not request.symbol.isalnum():
        raise InputError(
            f"symbol {request.symbol!r} must be letters and digits (BTCUSDT)", where="--symbol"
        )


def _state_reliability(home: Home) -> Reliability:
    """Reliability from the venue's recorded orders; None for a venue without any (or
    a home without a state database: a preview never creates one)."""
    location = home.state_path
    if isinstance(location, Path) and not location.exists():
        return lambda venue: None
    cache: dict[str, tuple[float, str] | None] = {}

    def reliability(venue: str) -> tuple[float, str] | None:
        if venue not in cache:
            with open_state(location, migrate=False) as db:
                sent, rejected = venue_order_outcomes(db, venue)
            ok = sent - rejected
            cache[venue] = (ok / sent, f"orders: {ok}/{sent} recent not rejected") if sent else None
        return cache[venue]

    return reliability


def _avg_bar_volume(request: RouteRequest) -> tuple[Decimal, str]:
    if request.avg_bar_volume is not None:
        return request.avg_bar_volume, "--avg-volume"
    from stagectl.data.bundled import bundled_datasets

    bundled = {d.symbol for d in bundled_datasets() if d.kind == "ohlcv" and d.market == "perp"}
    if request.symbol not in bundled:
        return Decimal(0), "unknown (no bundled candles of the symbol): rule 1 skipped"
    from stagectl.data.loaders import load_candles

    bars = load_candles(request.symbol).tail(VOLUME_BARS)
    volume = float((bars["close"] * bars["volume"]).mean())
    last = bars.index[-1].isoformat().replace("+00:00", "Z")
    return (
        Decimal(str(round(volume, 2))),
        f"bundled 1h candles: mean of the {len(bars)} bars to {last}",
    )


def _quotes(request: RouteRequest, reliability: Reliability) -> list[VenueQuote]:
    books = parse_book_venues(list(request.books))
    exchanges = parse_exchange_venues(request.exchanges) if request.exchanges else []
    if not books and not exchanges:
        books = [BookVenue("binance", BUNDLED_BOOK)]
    names = [b.name for b in books] + [e.name for e in exchanges]
    if len(set(names)) != len(names):
        raise InputError("a venue is named both by --book and --exchange", where="--exchange")
    if request.venues is not None:
        unknown = sorted(set(request.venues) - set(names))
        if unknown:
            raise InputError(
                f"unknown venue {unknown[0]!r} (given: {', '.join(names)})", where="--venues"
            )
        books = [b for b in books if b.name in request.venues]
        exchanges = [e for e in exchanges if e.name in request.venues]
    quotes = [snapshot_quote(b, request.symbol, reliability)[0] for b in books]
    quotes += [exchange_quote(e, request.symbol, reliability) for e in exchanges]
    return quotes


def run(request: RouteRequest, *, home: Home) -> RoutePreview:
    """Score the venues and choose the venue and the style; exit 3 when no venue could be
    reached, 2 when the reachable ones cannot take the order (none lists the symbol)."""
    _check(request)
    quotes = _quotes(request, _state_reliability(home))
    scores = score_venues(quotes, request.side, request.notional)
    best = scores[0] if scores and scores[0].score is not None else None
    if best is None:
        reasons = "; ".join(f"{s.venue}: {s.excluded}" for s in scores)
        if all(q.unavailable and q.unavailable.startswith("unreachable") for q in quotes):
            raise ExternalError(f"no venue reachable ({reasons})")
        raise InputError(f"no venue can take {request.symbol}: {reasons}", where="--symbol")
    volume, volume_source = _avg_bar_volume(request)
    assert best.spread_bps is not None  # a scored venue has a two-sided book
    inputs = StyleInputs(
        notional_usd=request.notional,
        spread_bps=best.spread_bps,
        signal_persistence=request.persistence,
        avg_bar_volume_usd=volume,
        urgent=request.urgent,
    )
    return RoutePreview(
        symbol=request.symbol,
        side=request.side,
        notional=request.notional,
        weights=dict(WEIGHTS),
        scales=ScoreScales(),
        scores=scores,
        chosen=best.venue,
        style=choose_style(inputs),
        style_inputs=inputs,
        avg_bar_volume_source=volume_source,
    )


def to_document(result: RoutePreview) -> dict[str, object]:
    """The preview as plain JSON types (``--json``)."""
    from dataclasses import asdict

    from stagectl.domain.jsonable import to_jsonable

    document: dict[str, object] = to_jsonable(asdict(result))
    return document
