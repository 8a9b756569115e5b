"""The Broker over a ccxt exchange: the only module that imports ccxt (lazily).

Error mapping, retry policy and idempotent order creation are described in
docs/exchange.md. In short: network errors, timeouts, rate limits and exchange
outages are retried with bounded exponential backoff; everything else is final.
A create-order is never sent twice blindly: after a failure that might hide an
accepted order, the order is looked up by its client order id first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

from stagectl.domain.types import (
    Balance,
    Fill,
    FundingPayment,
    KeyPermissions,
    Liquidity,
    Mark,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from stagectl.domain.venues import BookLevel
from stagectl.errors import InputError
from stagectl.exchange.credentials import Credentials
from stagectl.exchange.errors import (
    ExchangeAuthError,
    ExchangeError,
    ExchangeUnavailable,
    OrderNotFound,
    OrderRejected,
    OrderStateUnknown,
)
from stagectl.exchange.retry import DEFAULT_SLEEP, RetryPolicy, Sleep

T = TypeVar("T")
PAGE_WINDOW_MS = 7 * 24 * 3_600_000  # Binance caps userTrades/income ranges at 7 days
# ccxt picks Binance's per-market error tables by hostname; with a base_url override
# the hostname no longer matches, so the table is merged into the generic one.
_MARKET_ERROR_TABLE = {"binanceusdm": "linear", "binancecoinm": "inverse", "binance": "spot"}
# Binance USD-M answers a duplicate newClientOrderId among open orders with -4116.
_DUPLICATE_CLIENT_ID = re.compile(r'"code"\s*:\s*-4116\b')
_URL_QUERY = re.compile(r"(https?://[^\s?]+)\?\S*")


BINANCE_FAMILY = frozenset({"binance", "binanceusdm", "binancecoinm"})
"""The ccxt ids whose key restrictions ``CcxtBroker.key_permissions`` can read."""


def make_exchange(
    exchange_id: str,
    *,
    credentials: Credentials | None = None,
    base_url: str | None = None,
    sandbox: bool = False,
    timeout_ms: int = 10_000,
    rate_limit: bool = True,
) -> Any:
    """A configured ccxt exchange; ``base_url`` sends every API call to that host instead."""
    import ccxt

    if exchange_id not in ccxt.exchanges:
        raise InputError(
            f"unknown exchange {exchange_id!r} (ccxt ids such as binanceusdm)", where="--exchange"
        )
    config: dict[str, Any] = {
        "timeout": timeout_ms,
        "enableRateLimit": rate_limit,
        "options": {"fetchCurrencies": False, "warnOnFetchOpenOrdersWithoutSymbol": False},
    }
    if credentials is not None:
        config.update(apiKey=credentials.api_key, secret=credentials.api_secret)
    exchange = getattr(ccxt, exchange_id)(config)
    if sandbox:
        exchange.set_sandbox_mode(True)
    if base_url:
        exchange.urls["api"] = _redirect(exchange.urls["api"], base_url.rstrip("/"))
        table = _MARKET_ERROR_TABLE.get(exchange_id)
        if table and table in exchange.exceptions:
            exact = exchange.exceptions[table].get("exact", {})
            exchange.exceptions["exact"] = {**exchange.exceptions["exact"], **exact}
    return exchange


def _redirect(urls: Any, base_url: str) -> Any:
    """Every URL in ``urls`` with its scheme and host replaced by ``base_url``'s."""
    if isinstance(urls, dict):
        return {name: _redirect(value, base_url) for name, value in urls.items()}
    if isinstance(urls, str) and urls.startswith("http"):
        return base_url + urlsplit(urls).path
    return urls


class CcxtSession:
    """One ccxt exchange with error mapping and retries; shared by broker and market data."""

    def __init__(
        self, exchange: Any, *, policy: RetryPolicy | None = None, sleep: Sleep = DEFAULT_SLEEP
    ) -> None:
        self.exchange = exchange
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.requests = 0

    @property
    def name(self) -> str:
        return str(self.exchange.id)

    def call(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn``; retry retryable failures with backoff; raise a mapped error."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.once(operation, fn, *args, **kwargs)
            except ExchangeError as error:
                if not error.retryable:
                    raise
                if attempt >= self.policy.max_attempts:
                    message = f"{error.message} (gave up after {attempt} attempts)"
                    raise type(error)(message) from error
                self.backoff(attempt)

    def once(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` once; a ccxt error becomes a stagectl ExchangeError (``__cause__`` kept)."""
        import ccxt

        self.requests += 1
        try:
            return fn(*args, **kwargs)
        except ccxt.BaseError as error:
            raise self.map_error(operation, error) from error

    def backoff(self, attempt: int) -> None:
        self.sleep(self.policy.delay_s(attempt, self._retry_after_s()))

    def _retry_after_s(self) -> float | None:
        headers = getattr(self.exchange, "last_response_headers", None) or {}
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    def map_error(self, operation: str, error: Exception) -> ExchangeError:
        """ccxt's exception classes -> retryable or final stagectl outcomes."""
        import ccxt

        detail = self._scrub(str(error))
        where = f"{self.name} {operation}"
        kinds: list[tuple[type[Exception], type[ExchangeError], str]] = [
            (ccxt.RequestTimeout, ExchangeUnavailable, "timed out"),
            (ccxt.RateLimitExceeded, ExchangeUnavailable, "rate limited"),
            (ccxt.DDoSProtection, ExchangeUnavailable, "rate limited"),
            (ccxt.ExchangeNotAvailable, ExchangeUnavailable, "exchange not available"),
            (ccxt.NetworkError, ExchangeUnavailable, "network error"),
            (ccxt.AuthenticationError, ExchangeAuthError, "authentication failed"),
            (ccxt.PermissionDenied, ExchangeAuthError, "permission denied"),
            (ccxt.OrderNotFound, OrderNotFound, "order not found"),
            (ccxt.InsufficientFunds, OrderRejected, "insufficient funds"),
            (ccxt.InvalidOrder, OrderRejected, "invalid order"),
            (ccxt.BadSymbol, OrderRejected, "bad symbol"),
            (ccxt.OperationFailed, ExchangeUnavailable, "operation failed on the exchange"),
        ]
        for ccxt_class, outcome, label in kinds:
            if isinstance(error, ccxt_class):
                return outcome(f"{where}: {label}: {detail}")
        return ExchangeError(f"{where}: {detail}")

    def _scrub(self, text: str) -> str:
        """One line, no query strings (signatures), never the key or the secret."""
        line = _URL_QUERY.sub(r"\1", text.strip().splitlines()[0] if text.strip() else "")
        for secret in (self.exchange.apiKey, self.exchange.secret):
            if secret:
                line = line.replace(str(secret), "***")
        return line[:300]


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def _dec_or_none(value: Any) -> Decimal | None:
    return Decimal(str(value)) if value is not None else None


def _ts(ms: Any) -> datetime | None:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC) if ms is not None else None


def _ms(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return int(when.timestamp() * 1000)


class CcxtBroker:
    """The Broker protocol over ccxt's unified API (binanceusdm first)."""

    def __init__(self, session: CcxtSession, *, quote: str = "USDT") -> None:
        self.session = session
        self.quote = quote
        self.order_latency_ms = 0.0
        self._ex = session.exchange
        self._markets_loaded = False

    @property
    def name(self) -> str:
        return self.session.name

    @property
    def post_only(self) -> bool:
        """Binance's futures and spot APIs take ``timeInForce=GTX`` (post-only)."""
        return self.name.startswith("binance")

    def book_top(self, symbol: str) -> tuple[Decimal, Decimal] | None:
        """The best bid and ask of the order book; None when the venue has no book for the
        symbol or could not be read (the router then routes as if the spread were 0)."""
        try:
            book = self.session.once(
                "fetch order book", self._ex.fetch_order_book, self._unified(symbol), 5
            )
        except ExchangeError:
            return None
        bids, asks = book.get("bids") or [], book.get("asks") or []
        if not bids or not asks:
            return None
        bid, ask = _dec_or_none(bids[0][0]), _dec_or_none(asks[0][0])
        return None if bid is None or ask is None else (bid, ask)

    # --- markets ------------------------------------------------------------------------

    def market(self, symbol: str) -> dict[str, Any]:
        """The ccxt market for an exchange id (``ETHUSDT``) or a unified symbol."""
        if not self._markets_loaded:
            self.session.call("load markets", self._ex.load_markets)
            self._markets_loaded = True
        if symbol in self._ex.markets:
            return dict(self._ex.markets[symbol])
        candidates = self._ex.markets_by_id.get(symbol) or []
        if not candidates:
            raise InputError(f"{self.session.name} has no market {symbol!r}", where="symbol")
        return dict(candidates[0])

    def _unified(self, symbol: str) -> str:
        return str(self.market(symbol)["symbol"])

    def _order(self, raw: dict[str, Any], *, recovered: bool = False) -> Order:
        """ccxt's unified order as the domain's :class:`Order`."""
        market_id = self.market(raw["symbol"])["id"] if raw.get("symbol") else ""
        kind = _ORDER_TYPES.get(str(raw.get("type") or "").lower(), OrderType.LIMIT)
        filled = _dec(raw.get("filled"))
        status = _ORDER_STATUSES.get(str(raw.get("status")), OrderStatus.OPEN)
        if status == OrderStatus.OPEN and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        tif = raw.get("timeInForce")
        created = _ts(raw.get("timestamp")) or datetime.now(UTC)
        return Order(
            client_order_id=str(raw.get("clientOrderId") or ""),
            symbol=str(market_id),
            side=Side(str(raw.get("side")).lower()),
            type=kind,
            qty=_dec(raw.get("amount")),
            created_at=created,
            status=status,
            price=_dec_or_none(raw.get("price")) or None,
            stop_price=_dec_or_none(raw.get("stopPrice") or raw.get("triggerPrice")) or None,
            time_in_force=TimeInForce(str(tif)) if tif in TimeInForce.__members__ else None,
            reduce_only=bool(raw.get("reduceOnly")),
            exchange_order_id=str(raw.get("id")),
            filled_qty=filled,
            average_price=_dec_or_none(raw.get("average")) or None,
            updated_at=_ts(raw.get("lastUpdateTimestamp")) or created,
            account=self.name,
            recovered=recovered,
        )

    # --- reads --------------------------------------------------------------------------

    def server_time(self) -> datetime:
        ms = self.session.call("fetch time", self._ex.fetch_time)
        stamp = _ts(ms)
        if stamp is None:
            raise ExchangeError(f"{self.session.name} fetch time: no time in the answer")
        return stamp

    def key_permissions(self) -> KeyPermissions | None:
        """Binance's ``GET /sapi/v1/account/apiRestrictions`` for the Binance family (spot,
        USD-M and COIN-M share it); None for exchanges that do not report a key's rights."""
        fetch = getattr(self._ex, "sapi_get_account_apirestrictions", None)
        if self.session.name not in BINANCE_FAMILY or fetch is None:
            return None
        raw = self.session.call("fetch API key restrictions", fetch)
        trading = ("enableFutures", "enableSpotAndMarginTrading", "enableMargin")
        return KeyPermissions(
            can_read=bool(raw.get("enableReading")),
            can_trade=any(bool(raw.get(name)) for name in trading),
            can_withdraw=bool(raw.get("enableWithdrawals")),
            ip_restricted=bool(raw.get("ipRestrict")),
        )

    def balances(self) -> list[Balance]:
        raw = self.session.call("fetch balance", self._ex.fetch_balance)
        totals = raw.get("total") or {}
        return [
            Balance(asset, _dec(raw["free"].get(asset)), _dec(raw["used"].get(asset)), _dec(total))
            for asset, total in sorted(totals.items())
            if total
        ]

    def equity(self) -> Decimal:
        """The quote currency's margin balance: a USD-M account's ccxt ``total`` is the
        wallet balance plus unrealized PnL, so nothing is added to it."""
        return sum((b.total for b in self.balances() if b.asset == self.quote), Decimal(0))

    def positions(self) -> list[Position]:
        rows = self.session.call("fetch positions", self._ex.fetch_positions)
        out = []
        for row in rows:
            contracts = _dec(row.get("contracts")) * _dec(row.get("contractSize") or 1)
            if not contracts:
                continue
            sign = -1 if row.get("side") == "short" else 1
            out.append(
                Position(
                    symbol=str(self.market(row["symbol"])["id"]),
                    qty=contracts * sign,
                    entry_price=_dec(row.get("entryPrice")),
                    mark_price=_dec_or_none(row.get("markPrice")),
                    unrealized=_dec(row.get("unrealizedPnl")),
                    leverage=_dec_or_none(row.get("leverage")),
                )
            )
        return out

    def marks(self, symbols: Sequence[str]) -> dict[str, Mark]:
        unified = [self._unified(symbol) for symbol in symbols]
        rows = self.session.call("fetch mark prices", self._ex.fetch_mark_prices, unified)
        out = {}
        for row in rows.values():
            symbol = str(self.market(row["symbol"])["id"])
            price = _dec_or_none(row.get("markPrice"))
            stamp = _ts(row.get("timestamp"))
            if symbol in symbols and price is not None and stamp is not None:
                out[symbol] = Mark(symbol, price, stamp)
        return out

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        unified = self._unified(symbol) if symbol else None
        rows = self.session.call("fetch open orders", self._ex.fetch_open_orders, unified)
        return [self._order(row) for row in rows]

    def fetch_order(self, symbol: str, *, client_order_id: str) -> Order | None:
        """The order with this client order id, or None when the exchange has none."""
        try:
            raw = self.session.call(
                "fetch order",
                self._ex.fetch_order,
                "",
                self._unified(symbol),
                {"origClientOrderId": client_order_id},
            )
        except OrderNotFound:
            return None
        return self._order(raw)

    def fills_since(self, symbol: str, since: datetime) -> list[Fill]:
        """Every fill from ``since`` to now, in 7-day windows, paged by ``limit``."""
        unified = self._unified(symbol)
        end_ms = _ms(self.server_time())
        seen: dict[str, Fill] = {}
        start_ms = _ms(since)
        while start_ms <= end_ms:
            window_end = min(start_ms + PAGE_WINDOW_MS - 1, end_ms)
            cursor = start_ms
            while True:
                rows = self.session.call(
                    "fetch fills",
                    self._ex.fetch_my_trades,
                    unified,
                    cursor,
                    1000,
                    {"until": window_end},
                )
                for row in rows:
                    fill = self._fill(row)
                    seen[fill.trade_id] = fill
                if len(rows) < 1000:
                    break
                cursor = int(rows[-1]["timestamp"])
            start_ms = window_end + 1
        return sorted(seen.values(), key=lambda f: (f.ts, f.trade_id))

    def _fill(self, row: dict[str, Any]) -> Fill:
        fee = row.get("fee") or {}
        stamp = _ts(row.get("timestamp"))
        assert stamp is not None  # ccxt always parses a trade's time
        return Fill(
            trade_id=str(row["id"]),
            ts=stamp,
            symbol=str(self.market(row["symbol"])["id"]),
            side=Side(str(row.get("side")).lower()),
            qty=_dec(row.get("amount")),
            price=_dec(row.get("price")),
            fee=_dec(fee.get("cost")),
            fee_currency=str(fee.get("currency") or self.quote),
            liquidity=Liquidity.MAKER if row.get("takerOrMaker") == "maker" else Liquidity.TAKER,
            order_id=str(row.get("order")),
            client_order_id=row.get("clientOrderId"),
            account=self.name,
        )

    def funding_since(self, since: datetime, symbol: str | None = None) -> list[FundingPayment]:
        unified = self._unified(symbol) if symbol else None
        rows = self.session.call(
            "fetch funding payments", self._ex.fetch_funding_history, unified, _ms(since), 1000
        )
        out = []
        for row in rows:
            stamp = _ts(row.get("timestamp"))
            assert stamp is not None
            market_id = self.market(row["symbol"])["id"] if row.get("symbol") else ""
            out.append(
                FundingPayment(
                    symbol=str(market_id),
                    ts=stamp,
                    amount=_dec(row.get("amount")),
                    payment_id=str(row.get("id")),
                    currency=str(row.get("code") or self.quote),
                )
            )
        return out

    # --- writes -------------------------------------------------------------------------

    def set_leverage(self, symbol: str, leverage: int) -> None:
        self.session.call("set leverage", self._ex.set_leverage, leverage, self._unified(symbol))

    def place(self, order: Order) -> Order:
        """Create an order exactly once, even when an attempt fails after reaching the exchange.

        After a retryable failure the order is looked up by client order id; only
        when the exchange confirms it has no such order is the create sent again. A
        stop-limit goes out as ccxt's limit order with a ``stopPrice``; an exchange that
        takes none through its order API is refused here, unsent (:meth:`order_type_refusal`).
        """
        unified = self._unified(order.symbol)
        params: dict[str, Any] = {"clientOrderId": order.client_order_id}
        if order.reduce_only:
            params["reduceOnly"] = True
        kind = "market" if order.type == OrderType.MARKET else "limit"
        if kind == "limit":
            params["timeInForce"] = (order.time_in_force or TimeInForce.GTC).value
        if order.type == OrderType.STOP_LIMIT:
            refusal = self.order_type_refusal(OrderType.STOP_LIMIT)
            if refusal is not None:
                raise OrderRejected(
                    f"{self.name} create order {order.client_order_id}: {refusal}; "
                    "run without --stop-limits"
                )
            params["stopPrice"] = float(order.stop_price or 0)
        price = float(order.price) if kind == "limit" and order.price is not None else None
        attempt = 0
        while True:
            attempt += 1
            sent_at = time.monotonic()
            try:
                raw = self.session.once(
                    "create order",
                    self._ex.create_order,
                    unified,
                    kind,
                    order.side.value,
                    float(order.qty),
                    price,
                    params,
                )
                self.order_latency_ms = (time.monotonic() - sent_at) * 1000.0
                return self._order(raw)
            except ExchangeError as error:
                if _is_duplicate_client_id(error):
                    return self._recover(order, error)
                if not error.retryable:
                    raise
                last_error = error
            self.session.backoff(attempt)
            self._wait_out_in_flight(sent_at, last_error)
            found = self._lookup_after_failure(order, last_error)
            if found is not None:
                return replace(found, recovered=True)
            if attempt >= self.session.policy.max_attempts:
                raise ExchangeUnavailable(
                    f"{last_error.message} (order {order.client_order_id} not placed after "
                    f"{attempt} attempts)"
                )

    def order_type_refusal(self, order_type: OrderType) -> str | None:
        """Why this exchange cannot take orders of that type through ccxt, or None.

        Market and limit orders it takes. For a stop-limit, ccxt sends the conditional
        orders of Binance's derivatives to a separate algo-order API (its own ids,
        lookups and cancels, and fills under a new order id), which this broker does not
        speak: such an order could not be looked up by its client id, so it could not be
        made idempotent, and it is refused rather than sent blind.
        """
        if order_type != OrderType.STOP_LIMIT:
            return None
        if not self._ex.has.get("createStopLimitOrder"):
            return "this exchange takes no stop-limit orders through ccxt"
        if callable(getattr(self._ex, "fapiPrivatePostAlgoOrder", None)):
            return (
                "its stop-limit orders go through the exchange's algo-order API, which "
                "stagectl does not use yet"
            )
        return None

    def _wait_out_in_flight(self, sent_at: float, error: ExchangeError) -> None:
        """Let a create that may still be travelling land (or expire) before the lookup.

        A rate-limit answer (429/418) is a refusal: nothing is in flight. Anything else
        retryable (timeout, dropped connection, 5xx) may have reached the exchange, and
        a lookup that runs before it lands would let the retry place the order twice.
        """
        import ccxt

        if isinstance(error.__cause__, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
            return
        remaining = sent_at + self.session.policy.in_flight_s - time.monotonic()
        if remaining > 0:
            self.session.sleep(remaining)

    def _recover(self, request: Order, error: ExchangeError) -> Order:
        found = self._lookup_after_failure(request, error)
        if found is None:
            raise error
        return replace(found, recovered=True)

    def _lookup_after_failure(self, request: Order, error: ExchangeError) -> Order | None:
        """The order if an earlier attempt placed it, None if the exchange confirms it did not."""
        try:
            return self.fetch_order(request.symbol, client_order_id=request.client_order_id)
        except ExchangeError as lookup_error:
            raise OrderStateUnknown(
                f"{self.session.name} create order {request.client_order_id}: the first attempt "
                f"failed ({error.message}) and the exchange could not confirm whether it placed "
                f"the order ({lookup_error.message}); check open orders and fills before "
                "retrying"
            ) from lookup_error

    def cancel(self, symbol: str, *, client_order_id: str) -> Order:
        """Cancel by client order id; an order already done returns its final state."""
        unified = self._unified(symbol)
        try:
            raw = self.session.call(
                "cancel order",
                self._ex.cancel_order,
                "",
                unified,
                {"origClientOrderId": client_order_id},
            )
            return self._order(raw)
        except OrderNotFound:
            existing = self.fetch_order(symbol, client_order_id=client_order_id)
            if existing is None or existing.status.is_open:
                raise
            return existing

    def cancel_all(self, symbol: str) -> None:
        self.session.call("cancel all orders", self._ex.cancel_all_orders, self._unified(symbol))


_ORDER_TYPES = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP_LIMIT,
    "stop_limit": OrderType.STOP_LIMIT,
}
_ORDER_STATUSES = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def _is_duplicate_client_id(error: ExchangeError) -> bool:
    return isinstance(error, OrderRejected) and bool(_DUPLICATE_CLIENT_ID.search(error.message))


def open_broker(
    exchange_id: str = "binanceusdm",
    *,
    credentials: Credentials | None,
    base_url: str | None = None,
    sandbox: bool = False,
    timeout_ms: int = 10_000,
    policy: RetryPolicy | None = None,
    sleep: Sleep = DEFAULT_SLEEP,
    rate_limit: bool = True,
) -> CcxtBroker:
    """A CcxtBroker; pass ``require_credentials()`` for private calls.

    ``rate_limit`` keeps ccxt's client-side throttle (request weights) on; turn it
    off only against the loopback simulator.
    """
    exchange = make_exchange(
        exchange_id,
        credentials=credentials,
        base_url=base_url,
        sandbox=sandbox,
        timeout_ms=timeout_ms,
        rate_limit=rate_limit,
    )
    return CcxtBroker(CcxtSession(exchange, policy=policy, sleep=sleep))


@dataclass(frozen=True)
class BookRead:
    """One order book as a venue answered it, with the measured round trip."""

    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    latency_ms: float


@dataclass(frozen=True)
class TradingFees:
    """A symbol's fee rates (fractions of notional) and where they come from."""

    maker: Decimal
    taker: Decimal
    basis: str
    """``account`` (the key's own rates) or ``market`` (ccxt's published schedule)."""


def _levels(rows: Any) -> tuple[BookLevel, ...]:
    return tuple(BookLevel(_dec(row[0]), _dec(row[1])) for row in rows or [])


class CcxtMarketData:
    """Public market data (no credentials needed): OHLCV and funding-rate history, order
    books and fee rates."""

    def __init__(self, session: CcxtSession) -> None:
        self.session = session
        self.broker = CcxtBroker(session)

    def market(self, symbol: str) -> dict[str, Any]:
        return self.broker.market(symbol)

    def server_time(self) -> datetime:
        return self.broker.server_time()

    def ohlcv_page(
        self, symbol: str, timeframe: str, since_ms: int, until_ms: int, limit: int
    ) -> list[list[float]]:
        unified = self.broker._unified(symbol)
        rows: list[list[float]] = self.session.call(
            "fetch OHLCV",
            self.session.exchange.fetch_ohlcv,
            unified,
            timeframe,
            since_ms,
            limit,
            {"until": until_ms},
        )
        return rows

    def funding_page(
        self, symbol: str, since_ms: int, until_ms: int, limit: int
    ) -> list[tuple[int, float]]:
        unified = self.broker._unified(symbol)
        rows = self.session.call(
            "fetch funding rates",
            self.session.exchange.fetch_funding_rate_history,
            unified,
            since_ms,
            limit,
            {"until": until_ms},
        )
        return [(int(r["timestamp"]), float(r["fundingRate"])) for r in rows]

    def order_book(self, symbol: str, depth: int) -> BookRead:
        """The book's top ``depth`` levels a side, asked once (no retry: a caller probing
        the venue counts each failure); ``latency_ms`` times that one request
        (load_markets happens before the clock starts)."""
        unified = self.broker._unified(symbol)
        started = time.perf_counter()
        raw = self.session.once(
            "fetch order book", self.session.exchange.fetch_order_book, unified, depth
        )
        latency_ms = (time.perf_counter() - started) * 1000
        return BookRead(_levels(raw.get("bids")), _levels(raw.get("asks")), latency_ms)

    def trading_fees(self, symbol: str) -> TradingFees:
        """The account's rates when the exchange has a key and answers; the market's
        published schedule otherwise."""
        market = self.market(symbol)
        if self.session.exchange.apiKey:
            try:
                fee = self.session.call(
                    "fetch trading fee",
                    self.session.exchange.fetch_trading_fee,
                    str(market["symbol"]),
                )
                return TradingFees(_dec(fee.get("maker")), _dec(fee.get("taker")), "account")
            except ExchangeError:
                pass
        return TradingFees(_dec(market.get("maker")), _dec(market.get("taker")), "market")

    def timeframe_ms(self, timeframe: str) -> int:
        import ccxt

        try:
            return int(ccxt.Exchange.parse_timeframe(timeframe)) * 1000
        except Exception as error:
            raise InputError(
                f"not a timeframe: {timeframe!r} (e.g. 1m, 5m, 1h, 1d)", where="--timeframe"
            ) from error
