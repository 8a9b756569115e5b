"""What each venue quotes, for the router: from an exchange through ccxt, or from a
recorded book snapshot offline.

An exchange is asked ``PROBES`` times for its book, once each (no retry): the latency is
the median round trip of the answers, and the share of answers is the probe reliability.
A venue's recent order outcomes in the state (``state.orders``) replace the probe
reliability when it has any. A recorded snapshot has no latency (the scorer gives it a
neutral score) and takes its fees from the cost model's published schedule
(``domain.costs.DEFAULT_FEES``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from stagectl.data.book_snapshots import BookSnapshot, read_book_snapshots
from stagectl.domain.costs import DEFAULT_FEES
from stagectl.domain.venues import VenueQuote
from stagectl.errors import InputError
from stagectl.exchange.ccxt_broker import BookRead, CcxtMarketData, CcxtSession, make_exchange
from stagectl.exchange.credentials import READ_ONLY, load_credentials
from stagectl.exchange.errors import ExchangeError
from stagectl.exchange.retry import RetryPolicy

PROBES = 3
BOOK_DEPTH = 20
"""Levels a side asked for (Binance accepts 5, 10, 20, 50, ...)."""
_BPS = Decimal(10_000)
# A preview waits for no venue long: loading markets is retried once, briefly.
_PREVIEW_RETRY = RetryPolicy(max_attempts=2, base_backoff_s=0.25, max_backoff_s=1.0)
# (exchange in a shared-data file name, market) -> the cost model's fee schedule entry
_FEE_VENUE = {
    ("binance", "perp"): "binance_usdm",
    ("bybit", "perp"): "bybit_linear",
    ("okx", "perp"): "okx_swap",
}

Reliability = Callable[[str], tuple[float, str] | None]
"""A venue name -> (success rate, basis) from recorded order outcomes; None: no record."""


@dataclass(frozen=True)
class ExchangeVenue:
    """One ``--exchange`` item: ``[NAME=]CCXT_ID[@URL]``."""

    name: str
    exchange_id: str
    base_url: str | None = None


@dataclass(frozen=True)
class BookVenue:
    """One ``--book`` item: ``[NAME=]FILE``."""

    name: str
    path: Path


def _name_and_rest(item: str, option: str) -> tuple[str | None, str]:
    name, sep, rest = item.partition("=")
    if not sep:
        return None, item
    if not name.strip() or not rest.strip():
        raise InputError(f"{option} item {item!r}: expected NAME=VALUE", where=option)
    return name.strip(), rest.strip()


def _unique(names: list[str], option: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"venue {name!r} is named twice; name each one NAME=...", where=option)
        seen.add(name)


def parse_exchange_venues(text: str) -> list[ExchangeVenue]:
    """``binanceusdm,fast=binanceusdm@http://127.0.0.1:8765`` -> venues; names unique."""
    venues: list[ExchangeVenue] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise InputError("empty item in the venue list", where="--exchange")
        name, rest = _name_and_rest(item, "--exchange")
        exchange_id, _, url = rest.partition("@")
        if url and not url.startswith(("http://", "https://")):
            raise InputError(f"{item!r}: the URL after @ must be http(s)", where="--exchange")
        venues.append(ExchangeVenue(name or exchange_id, exchange_id, url or None))
    _unique([v.name for v in venues], "--exchange")
    return venues


def parse_book_venues(items: list[str]) -> list[BookVenue]:
    """``--book`` items -> venues; an unnamed file is named by its exchange."""
    venues: list[BookVenue] = []
    for item in items:
        name, rest = _name_and_rest(item, "--book")
        path = Path(rest)
        venues.append(BookVenue(name or path.name.split("_", 1)[0], path))
    _unique([v.name for v in venues], "--book")
    return venues


def snapshot_quote(
    venue: BookVenue, symbol: str, reliability: Reliability
) -> tuple[VenueQuote, BookSnapshot]:
    """The file's last snapshot as the venue's quote."""
    snapshot = read_book_snapshots(venue.path)[-1]
    fee_venue = _FEE_VENUE.get((snapshot.exchange, snapshot.market))
    if fee_venue is None:
        raise InputError(
            f"{venue.path}: no fee schedule for {snapshot.exchange} {snapshot.market} "
            f"(known: {', '.join(sorted(f'{e} {m}' for e, m in _FEE_VENUE))})",
            where="--book",
        )
    fees = DEFAULT_FEES.venues[fee_venue]
    rate, basis = reliability(venue.name) or (1.0, "assumed (recorded book: no probes)")
    stamp = snapshot.timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    unavailable = None
    if snapshot.symbol != symbol:
        unavailable = f"recorded book is {snapshot.symbol}, not {symbol}"
    quote = VenueQuote(
        venue=venue.name,
        symbol=symbol,
        bids=snapshot.bids,
        asks=snapshot.asks,
        taker_fee=Decimal(str(fees.taker_bps)) / _BPS,
        maker_fee=Decimal(str(fees.maker_bps)) / _BPS,
        latency_ms=None,
        reliability=rate,
        reliability_basis=basis,
        unavailable=unavailable,
        source=f"{venue.path.name} @ {stamp} (fees: {fee_venue} schedule)",
    )
    return quote, snapshot


def _market_data(venue: ExchangeVenue, timeout_ms: int) -> CcxtMarketData:
    exchange = make_exchange(
        venue.exchange_id,
        credentials=load_credentials(role=READ_ONLY),
        base_url=venue.base_url,
        timeout_ms=timeout_ms,
        rate_limit=venue.base_url is None,
    )
    return CcxtMarketData(CcxtSession(exchange, policy=_PREVIEW_RETRY))


def exchange_quote(
    venue: ExchangeVenue,
    symbol: str,
    reliability: Reliability,
    *,
    probes: int = PROBES,
    timeout_ms: int = 5_000,
) -> VenueQuote:
    """Probe the venue's book ``probes`` times; a venue that cannot be asked is returned
    with its reason (``unavailable``) rather than raised, so the others still score."""
    blank = VenueQuote(venue=venue.name, symbol=symbol, source=venue.exchange_id)
    data = _market_data(venue, timeout_ms)
    try:
        data.market(symbol)
    except InputError:
        return VenueQuote(venue.name, symbol, lists_symbol=False, source=venue.exchange_id)
    except ExchangeError as error:
        return _unreachable(blank, error)
    answers: list[BookRead] = []
    last_error: ExchangeError | None = None
    for _ in range(probes):
        try:
            answers.append(data.order_book(symbol, BOOK_DEPTH))
        except ExchangeError as error:
            last_error = error
    if not answers:
        assert last_error is not None
        return _unreachable(blank, last_error)
    try:
        fees = data.trading_fees(symbol)
    except ExchangeError as error:
        return _unreachable(blank, error)
    rate, basis = reliability(venue.name) or (
        len(answers) / probes,
        f"probes: {len(answers)}/{probes} book requests answered",
    )
    book = answers[-1]
    return VenueQuote(
        venue=venue.name,
        symbol=symbol,
        bids=book.bids,
        asks=book.asks,
        taker_fee=fees.taker,
        maker_fee=fees.maker,
        latency_ms=statistics.median(a.latency_ms for a in answers),
        reliability=rate,
        reliability_basis=basis,
        source=f"{venue.exchange_id} (fees: {fees.basis})",
    )


def _unreachable(blank: VenueQuote, error: ExchangeError) -> VenueQuote:
    return VenueQuote(
        venue=blank.venue,
        symbol=blank.symbol,
        unavailable=f"unreachable: {error.message}",
        source=blank.source,
    )
