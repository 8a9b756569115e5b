"""``stagectl metrics window``: what the book did over the last H hours (or S seconds).

The window is ``[until - length, until)``. Realized PnL is FIFO over the lots carried in from
before the window (exact, ``domain.ledger_windows.window_metrics``). Unrealized PnL values the
lots open at ``until`` at a mark: the price given with ``--mark SYMBOL=PRICE``, else the last
fill price before ``until`` (``mark_source`` says which). It imports numpy but not pandas
(the state database is opened without migrating, so no sqlite-utils either).

Entry: ``run(WindowRequest, *, home) -> WindowResult``; the CLI gives ``until`` (the wall
clock when ``--until`` is not given) and the ``--mark`` prices by normalized symbol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from stagectl.config.home import Home
from stagectl.config.state_url import StateLocation
from stagectl.errors import InputError
from stagectl.services.ledger import reads as ledger

MARK_GIVEN = "given"
MARK_LAST_FILL = "last_fill"


@dataclass(frozen=True)
class WindowRequest:
    length_s: float
    until: datetime
    symbol: str | None = None
    marks: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowResult:
    start: datetime
    until: datetime
    state_path: StateLocation
    metrics: Any  # domain.ledger_windows.WindowMetrics
    mark_source: dict[str, str]
    liquidity_unknown: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        by_symbol = {
            symbol: _symbol_dict(m, self.mark_source.get(symbol), self.liquidity_unknown)
            for symbol, m in self.metrics.by_symbol.items()
        }
        total = self.metrics
        return {
            "window": {
                "start": self.start,
                "until": self.until,
                "seconds": (self.until - self.start).total_seconds(),
            },
            "state": str(self.state_path),
            "symbols": by_symbol,
            "total": {
                "fills": total.fills,
                "maker_share": total.maker_share,
                "notional_quote": total.notional_quote,
                "fees_quote": total.fees_quote,
                "cash_flow_quote": total.cash_flow_quote,
                "realized_fifo_quote": total.realized_fifo_quote,
                "unrealized_quote": total.unrealized_quote,
            },
        }


def _symbol_dict(m: Any, mark_source: str | None, unknown: dict[str, int]) -> dict[str, Any]:
    return {
        "fills": m.fills,
        "buys": m.buys,
        "sells": m.sells,
        "maker_fills": m.maker_fills,
        "taker_fills": m.taker_fills,
        "liquidity_unknown": unknown.get(m.symbol, 0),
        "maker_share": m.maker_share,
        "volume_base": m.volume_base,
        "notional_quote": m.notional_quote,
        "fees_quote": m.fees_quote,
        "cash_flow_quote": m.cash_flow_quote,
        "realized_fifo_quote": m.realized_fifo_quote,
        "inventory_start": m.inventory_start,
        "inventory_end": m.inventory_end,
        "mark_price": m.mark_price,
        "mark_source": mark_source,
        "unrealized_quote": m.unrealized_quote,
    }


def run(request: WindowRequest, *, home: Home) -> WindowResult:
    """The window's metrics from one snapshot of the home's ledger."""
    from stagectl.domain.ledger_windows import window_metrics
    from stagectl.state.ledger_reads import snapshot

    if request.length_s <= 0:
        raise InputError("the window must be longer than zero", where="--hours/--seconds")
    start = request.until - timedelta(seconds=request.length_s)
    state_path = home.state_path
    with ledger.open_ledger(state_path) as db, snapshot(db):
        symbols = [request.symbol] if request.symbol else ledger.ledger_symbols(db, request.until)
        carried: dict[str, list[Any]] = {}
        in_window: list[Any] = []
        marks: dict[str, Decimal] = {}
        sources: dict[str, str] = {}
        unknown: dict[str, int] = {}
        for symbol in symbols:
            carried[symbol] = ledger.open_lots(db, symbol, start)
            fills, unknown[symbol] = ledger.window_fills(db, symbol, start, request.until)
            in_window += fills
            if symbol in request.marks:
                marks[symbol], sources[symbol] = request.marks[symbol], MARK_GIVEN
            else:
                price = ledger.last_price(db, symbol, request.until)
                if price is not None:
                    marks[symbol], sources[symbol] = price, MARK_LAST_FILL
    metrics = window_metrics([], in_window, marks, carried=carried)
    return WindowResult(
        start=start,
        until=request.until,
        state_path=state_path,
        metrics=metrics,
        mark_source=sources,
        liquidity_unknown=unknown,
    )
