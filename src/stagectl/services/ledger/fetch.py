"""``stagectl metrics fetch``: an exchange account's trades into the fill ledger.

The trades come from the exchange layer (``exchange.ccxt_broker.CcxtBroker.fills_since``:
every fill of one symbol from ``since`` to the exchange's time, in 7-day windows, paged),
with the *read-only* key from ``STAGECTL_READONLY_API_KEY``/``_SECRET`` or
``STAGECTL_READONLY_KEY_FILE`` (never the trading key, never from the command line,
never printed), refused when the exchange reports that it can trade or withdraw. They then
take exactly the path of ``metrics import``: the same column validation
(``data.trade_validation``) and the same staged import (``services.ledger.importer.
record_chunks``: short merge transactions, visible all at once when complete), keyed
(account, ``SYMBOL:ID``), so a second fetch of the same range adds nothing and a fetch and
an import of the same trades under the same account record each trade once. Nothing is
written unless every trade is valid.

Entry: ``run(FetchRequest, *, home, progress, policy, rate_limit) -> FetchResult``.
``progress`` is told what is fetched and written; ``policy`` (the exchange retry policy)
and ``rate_limit`` (ccxt's own throttle) are how the exchange is spoken to, which tests
tune.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stagectl.config.home import Home
from stagectl.config.state_url import StateLocation
from stagectl.errors import InputError
from stagectl.exchange.retry import RetryPolicy

if TYPE_CHECKING:
    from stagectl.services.ledger.importer import Progress

FETCH_SOURCE = "fetch"


@dataclass(frozen=True)
class FetchRequest:
    exchange: str
    symbol: str
    since: datetime
    account: str | None = None  # default: the exchange id
    base_url: str | None = None
    timeout_ms: int = 10_000


@dataclass(frozen=True)
class FetchResult:
    exchange: str
    account: str
    symbol: str
    since: datetime
    state_path: StateLocation
    fetched: int
    inserted: int
    duplicates: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "account": self.account,
            "symbol": self.symbol,
            "since": self.since,
            "state": str(self.state_path),
            "fetched": self.fetched,
            "inserted": self.inserted,
            "already_recorded": self.duplicates,
        }


def _records_as_values(records: list[Any]) -> dict[str, list[str]]:
    """Broker fills (``domain.types.Fill``) as the text columns ``metrics import`` reads."""
    from stagectl.state._codec import ts_text

    return {
        "trade_id": [r.trade_id for r in records],
        "timestamp": [ts_text(r.ts) for r in records],
        "symbol": [r.symbol for r in records],
        "side": [r.side.value for r in records],
        "price": [str(r.price) for r in records],
        "amount": [str(r.qty) for r in records],
        "fee": [str(r.fee) for r in records],
        "fee_currency": [r.fee_currency for r in records],
        "liquidity": [r.liquidity.value for r in records],
        "order_id": [r.order_id for r in records],
    }


def _content_sha256(values: dict[str, list[str]]) -> str:
    """The identity of a fetched batch of trades (``state.ledger_imports.ImportKey``)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def run(
    request: FetchRequest,
    *,
    home: Home,
    progress: Progress | None = None,
    policy: RetryPolicy | None = None,
    rate_limit: bool = True,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FetchResult:
    """Fetch and record; ExchangeError (exit 3) when the exchange cannot be reached.
    ``policy`` None is the broker's default retry policy; ``clock`` is now, which bounds
    the trades' times (at most a day ahead)."""
    from stagectl.data.files import normalize_symbol
    from stagectl.data.trade_validation import validate_values
    from stagectl.exchange.ccxt_broker import open_broker
    from stagectl.exchange.credentials import (
        READ_ONLY,
        refuse_trading_rights,
        require_credentials,
    )
    from stagectl.services.ledger.conflicts import RowNames
    from stagectl.services.ledger.importer import check_account, record_chunks
    from stagectl.state.ledger_imports import ImportKey

    account = request.account if request.account is not None else request.exchange
    check_account(account)
    symbol = normalize_symbol(request.symbol)
    broker = open_broker(
        request.exchange,
        credentials=require_credentials(role=READ_ONLY),
        base_url=request.base_url,
        timeout_ms=request.timeout_ms,
        policy=policy,
        rate_limit=rate_limit,
    )
    refuse_trading_rights(broker.key_permissions(), command="metrics fetch")
    records = broker.fills_since(symbol, request.since)
    if progress is not None:
        progress(f"{request.exchange}: {len(records)} {symbol} trades since {request.since}")
    values = _records_as_values(records)
    columns = validate_values(values, now=clock())

    def refuse(bad: list[Any]) -> InputError:
        return InputError(
            f"{bad[0].field}: {bad[0].message}; nothing was recorded",
            where=f"{request.exchange} trade {bad[0].row}",
        )

    since = request.since.isoformat()
    recorded = record_chunks(
        home.state_path,
        iter([columns]),
        key=ImportKey(_content_sha256(values), account, FETCH_SOURCE, None),
        origin=f"{request.exchange} {symbol} trades since {since}",
        rows=len(columns),
        skip_bad=False,
        bad_rows_error=refuse,
        names=RowNames(row=lambda n: f"{request.exchange} trade {n}", first=columns.first_row),
        progress=progress,
    )
    return FetchResult(
        exchange=request.exchange,
        account=account,
        symbol=symbol,
        since=request.since,
        state_path=home.state_path,
        fetched=len(records),
        inserted=recorded.inserted,
        duplicates=recorded.duplicates,
    )
