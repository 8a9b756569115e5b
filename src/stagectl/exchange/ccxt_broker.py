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
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

from stagectl.errors import InputError
from stagectl.exchange.broker import (
    Balance,
    FillRecord,
    FundingPayment,
    OrderAck,
    OrderRequest,
    Position,
)
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

    def __init__(self, session: CcxtSession) -> None:
        self.session = session
        self._ex = session.exchange
        self._markets_loaded = False

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

    def _ack(self, raw: dict[str, Any], *, recovered: bool = False) -> OrderAck:
        market_id = self.market(raw["symbol"])["id"] if raw.get("symbol") else ""
        return OrderAck(
            symbol=str(market_id),
            order_id=str(raw.get("id")),
            client_order_id=raw.get("clientOrderId"),
            status=str(raw.get("status")),
            side=str(raw.get("side")),
            type=str(raw.get("type")),
            amount=_dec(raw.get("amount")),
            filled=_dec(raw.get("filled")),
            price=_dec_or_none(raw.get("price")),
            average_price=_dec_or_none(raw.get("average")),
            reduce_only=bool(raw.get("reduceOnly")),
            timestamp=_ts(raw.get("timestamp")),
            recovered=recovered,
        )

    # --- reads --------------------------------------------------------------------------

    def server_time(self) -> datetime:
        ms = self.session.call("fetch time", self._ex.fetch_time)
        stamp = _ts(ms)
        if stamp is None:
            raise ExchangeError(f"{self.session.name} fetch time: no time in the answer")
        return stamp

    def balances(self) -> list[Balance]:
        raw = self.session.call("fetch balance", self._ex.fetch_balance)
        totals = raw.get("total") or {}
        return [
            Balance(asset, _dec(raw["free"].get(asset)), _dec(raw["used"].get(asset)), _dec(total))
            for asset, total in sorted(totals.items())
            if total
        ]

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
                    amount=contracts * sign,
                    entry_price=_dec(row.get("entryPrice")),
                    mark_price=_dec_or_none(row.get("markPrice")),
                    unrealized_pnl=_dec(row.get("unrealizedPnl")),
                    leverage=_dec_or_none(row.get("leverage")),
                )
            )
        return out

    def open_orders(self, symbol: str | None = None) -> list[OrderAck]:
        unified = self._unified(symbol) if symbol else None
        rows = self.session.call("fetch open orders", self._ex.fetch_open_orders, unified)
        return [self._ack(row) for row in rows]

    def fetch_order(self, symbol: str, *, client_order_id: str) -> OrderAck | None:
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
        return self._ack(raw)

    def fetch_fills(self, symbol: str, since: datetime) -> list[FillRecord]:
        """Every fill from ``since`` to now, in 7-day windows, paged by ``limit``."""
        unified = self._unified(symbol)
        end_ms = _ms(self.server_time())
        seen: dict[str, FillRecord] = {}
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
        return sorted(seen.values(), key=lambda f: (f.timestamp, f.trade_id))

    def _fill(self, row: dict[str, Any]) -> FillRecord:
        fee = row.get("fee") or {}
        stamp = _ts(row.get("timestamp"))
        assert stamp is not None  # ccxt always parses a trade's time
        return FillRecord(
            symbol=str(self.market(row["symbol"])["id"]),
            trade_id=str(row["id"]),
            order_id=str(row.get("order")),
            side=str(row.get("side")),
            price=_dec(row.get("price")),
            amount=_dec(row.get("amount")),
            fee=_dec(fee.get("cost")),
            fee_currency=str(fee.get("currency") or ""),
            maker=row.get("takerOrMaker") == "maker",
            timestamp=stamp,
        )

    def funding_payments(self, since: datetime, symbol: str | None = None) -> list[FundingPayment]:
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
                    str(market_id),
                    str(row.get("id")),
                    _dec(row.get("amount")),
                    str(row.get("code") or ""),
                    stamp,
                )
            )
        return out

    # --- writes -------------------------------------------------------------------------

    def set_leverage(self, symbol: str, leverage: int) -> None:
        self.session.call("set leverage", self._ex.set_leverage, leverage, self._unified(symbol))

    def place(self, request: OrderRequest) -> OrderAck:
        """Create an order exactly once, even when an attempt fails after reaching the exchange.

        After a retryable failure the order is looked up by client order id; only
        when the exchange confirms it has no such order is the create sent again.
        """
        unified = self._unified(request.symbol)
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        if request.reduce_only:
            params["reduceOnly"] = True
        if request.type == "limit":
            params["timeInForce"] = request.time_in_force
        price = float(request.price) if request.price is not None else None
        attempt = 0
        while True:
            attempt += 1
            sent_at = time.monotonic()
            try:
                raw = self.session.once(
                    "create order",
                    self._ex.create_order,
                    unified,
                    request.type,
                    request.side,
                    float(request.amount),
                    price,
                    params,
                )
                return self._ack(raw)
            except ExchangeError as error:
                if _is_duplicate_client_id(error):
                    return self._recover(request, error)
                if not error.retryable:
                    raise
                last_error = error
            self.session.backoff(attempt)
            self._wait_out_in_flight(sent_at, last_error)
            found = self._lookup_after_failure(request, last_error)
            if found is not None:
                return replace(found, recovered=True)
            if attempt >= self.session.policy.max_attempts:
                raise ExchangeUnavailable(
                    f"{last_error.message} (order {request.client_order_id} not placed after "
                    f"{attempt} attempts)"
                )

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

    def _recover(self, request: OrderRequest, error: ExchangeError) -> OrderAck:
        found = self._lookup_after_failure(request, error)
        if found is None:
            raise error
        return replace(found, recovered=True)

    def _lookup_after_failure(self, request: OrderRequest, error: ExchangeError) -> OrderAck | None:
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

    def cancel(self, symbol: str, *, client_order_id: str) -> OrderAck:
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
            return self._ack(raw)
        except OrderNotFound:
            existing = self.fetch_order(symbol, client_order_id=client_order_id)
            if existing is None or existing.status == "open":
                raise
            return existing

    def cancel_all(self, symbol: str) -> None:
        self.session.call("cancel all orders", self._ex.cancel_all_orders, self._unified(symbol))


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


class CcxtMarketData:
    """Public market data pages (no credentials): OHLCV and funding-rate history."""

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

    def timeframe_ms(self, timeframe: str) -> int:
        import ccxt

        try:
            return int(ccxt.Exchange.parse_timeframe(timeframe)) * 1000
        except Exception as error:
            raise InputError(
                f"not a timeframe: {timeframe!r} (e.g. 1m, 5m, 1h, 1d)", where="--timeframe"
            ) from error
