"""Ledger metrics over a window and fixed-length PnL windows, on the exact FIFO.

Both book the fills with ``domain.ledger.fifo_realized`` (its conventions hold: fees are
charged to the fill that paid them, a base fee changes the quantity, lots are consumed
oldest first). Fills before the window only seed the lots; money stays Decimal until the
PnL-window table turns its sums into floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, localcontext
from typing import Any

import numpy as np

from stagectl.domain.ledger import FifoResult, Lot, decimal_places, fifo_realized
from stagectl.domain.ledger_book import fill_book_delta
from stagectl.domain.types import Fill

_ZERO = Decimal(0)


@dataclass(frozen=True)
class SymbolWindowMetrics:
    """One symbol over a window. Money in quote, quantities in base, all exact.

    ``realized_fifo_quote`` uses the lots carried in from before the window; ``unrealized_quote``
    values the lots open at the end of the window at ``mark_price``.
    """

    symbol: str
    fills: int
    buys: int
    sells: int
    maker_fills: int
    taker_fills: int
    volume_base: Decimal
    notional_quote: Decimal
    fees_quote: Decimal
    cash_flow_quote: Decimal
    realized_fifo_quote: Decimal
    inventory_start: Decimal
    inventory_end: Decimal
    mark_price: Decimal | None
    unrealized_quote: Decimal

    @property
    def maker_share(self) -> float:
        """Share of the window's fills (by count) that were maker fills; 0.0 without fills."""
        return self.maker_fills / self.fills if self.fills else 0.0


@dataclass(frozen=True)
class WindowMetrics:
    """Per-symbol metrics and their totals (money totals assume one quote currency)."""

    by_symbol: Mapping[str, SymbolWindowMetrics]

    def _total(self, name: str) -> Decimal:
        return sum((getattr(m, name) for m in self.by_symbol.values()), _ZERO)

    @property
    def fills(self) -> int:
        return sum(m.fills for m in self.by_symbol.values())

    @property
    def maker_share(self) -> float:
        makers = sum(m.maker_fills for m in self.by_symbol.values())
        return makers / self.fills if self.fills else 0.0

    @property
    def notional_quote(self) -> Decimal:
        return self._total("notional_quote")

    @property
    def fees_quote(self) -> Decimal:
        return self._total("fees_quote")

    @property
    def cash_flow_quote(self) -> Decimal:
        return self._total("cash_flow_quote")

    @property
    def realized_fifo_quote(self) -> Decimal:
        return self._total("realized_fifo_quote")

    @property
    def unrealized_quote(self) -> Decimal:
        return self._total("unrealized_quote")


def window_metrics(
    fills_before: Sequence[Fill],
    fills_in_window: Sequence[Fill],
    mark_price: Mapping[str, Decimal],
    *,
    carried: Mapping[str, Sequence[Lot]] | None = None,
) -> WindowMetrics:
    """Metrics of ``fills_in_window``, booked on top of the lots left by ``fills_before``.

    FIFO runs over ``fills_before + fills_in_window`` so the window's realized PnL consumes the
    lots carried in, exactly. ``carried`` holds lots open before ``fills_before`` (each
    symbol's oldest first, e.g. read from a lot checkpoint): every figure is the same as with
    their opening fills (``Lot.opening_fill``) at the head of ``fills_before``, digit for
    digit, but the lots are booked as lots. A symbol with inventory at the end needs a
    ``mark_price``.
    """
    before = inventories(fills_before, carried)
    combined = fifo_realized([*fills_before, *fills_in_window], carried)
    offset = len(fills_before)
    window_idx: dict[str, list[int]] = {}
    for i, fill in enumerate(fills_in_window):
        window_idx.setdefault(fill.symbol, []).append(offset + i)
    symbols = sorted(set(window_idx) | set(before) | set(combined.lots))
    result = {}
    for symbol in symbols:
        idx = window_idx.get(symbol, [])
        result[symbol] = _symbol_metrics(
            symbol, [fills_in_window[i - offset] for i in idx], before, combined, idx, mark_price
        )
    return WindowMetrics(by_symbol=result)


def inventories(
    fills: Sequence[Fill], carried: Mapping[str, Sequence[Lot]] | None = None
) -> dict[str, Decimal]:
    """Each symbol's open inventory after the lots ``carried`` and then ``fills`` (symbols
    left flat are absent): exactly ``fifo_realized(fills, carried).inventory(symbol)``,
    written the same way (the most decimal places among the lots' and fills' quantities and
    base fees), without booking the lots: FIFO's inventory is the sum of the book deltas."""
    totals: dict[str, Decimal] = {}
    places: dict[str, int] = {}
    exact = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)

    def count(symbol: str, delta: Decimal, values: Iterable[Decimal]) -> None:
        totals[symbol] = exact.add(totals.get(symbol, _ZERO), delta)
        for value in values:
            if value:
                places[symbol] = max(places.get(symbol, 0), decimal_places(value))

    for symbol, lots in (carried or {}).items():
        if lots:  # one sum, and the places of each distinct quantity once
            qtys = [lot.qty for lot in lots]
            with localcontext(exact):
                total = sum(qtys, _ZERO)
            count(symbol, total, set(qtys))
    for fill in fills:
        delta = fill_book_delta(fill)
        rest = fill.qty - delta if fill.side == "buy" else -fill.qty - delta
        count(fill.symbol, delta, (fill.qty, rest))
    return {
        symbol: exact.quantize(total, Decimal(1).scaleb(-places.get(symbol, 0)))
        for symbol, total in totals.items()
        if total
    }


def _symbol_metrics(
    symbol: str,
    fills: Sequence[Fill],
    before: Mapping[str, Decimal],
    combined: FifoResult,
    idx: list[int],
    mark_price: Mapping[str, Decimal],
) -> SymbolWindowMetrics:
    inventory_end = combined.inventory(symbol)
    mark = mark_price.get(symbol)
    if mark is None and combined.lots.get(symbol):
        raise ValueError(f"{symbol}: inventory {inventory_end} is open but no mark price given")
    makers = sum(1 for f in fills if f.liquidity == "maker")
    buys = sum(1 for f in fills if f.side == "buy")
    return SymbolWindowMetrics(
        symbol=symbol,
        fills=len(fills),
        buys=buys,
        sells=len(fills) - buys,
        maker_fills=makers,
        taker_fills=len(fills) - makers,
        volume_base=sum((f.qty for f in fills), _ZERO),
        notional_quote=sum((f.qty * f.price for f in fills), _ZERO),
        fees_quote=sum((f.fee_quote for f in fills), _ZERO),
        cash_flow_quote=sum((f.cash_flow for f in fills), _ZERO),
        realized_fifo_quote=combined.total_realized(idx),
        inventory_start=before.get(symbol, _ZERO),
        inventory_end=inventory_end,
        mark_price=mark,
        unrealized_quote=combined.unrealized(symbol, mark) if mark is not None else _ZERO,
    )


PNL_WINDOW_COLUMNS = (
    "window_start",
    "window_end",
    "fills",
    "realized_fifo_quote",
    "cash_flow_quote",
    "fees_quote",
    "volume_base",
    "notional_quote",
    "inventory_delta_base",
    "mid_start",
    "mid_end",
    "mid_return",
)


def pnl_windows(
    fills: Sequence[Fill],
    window_s: float,
    start: datetime,
    end: datetime,
    mids: Any = None,
) -> Any:
    """Consecutive windows ``[start + k*window_s, start + (k+1)*window_s)`` up to ``end``.

    One symbol per call. Fills before ``start`` only seed the FIFO lots. Sums are exact and are
    turned into floats in the returned pandas DataFrame (an analytics table, one row per window,
    columns ``PNL_WINDOW_COLUMNS``). ``mids`` is an optional float Series on a UTC DatetimeIndex;
    ``mid_start``/``mid_end`` are its last values at or before each window bound and
    ``mid_return = mid_end / mid_start - 1``.
    """
    import pandas as pd

    if window_s <= 0 or end <= start:
        raise ValueError("window_s must be positive and end after start")
    if len({f.symbol for f in fills}) > 1:
        raise ValueError("pnl_windows takes the fills of one symbol")
    fifo = fifo_realized(fills)
    span_s = (end - start).total_seconds()
    n_windows = int(-(-span_s // window_s))
    zero = [_ZERO] * n_windows
    sums = {name: list(zero) for name in ("realized", "cash", "fees", "volume", "notional", "inv")}
    counts = [0] * n_windows
    for i, fill in enumerate(fills):
        if not start <= fill.ts < end:
            continue
        k = int((fill.ts - start).total_seconds() // window_s)
        counts[k] += 1
        sums["realized"][k] += fifo.realized(i)
        sums["cash"][k] += fill.cash_flow
        sums["fees"][k] += fill.fee_quote
        sums["volume"][k] += fill.qty
        sums["notional"][k] += fill.qty * fill.price
        sums["inv"][k] += fill.book_delta
    starts = pd.date_range(pd.Timestamp(start), periods=n_windows, freq=pd.Timedelta(window_s, "s"))
    ends = (starts + pd.Timedelta(window_s, "s")).where(
        starts + pd.Timedelta(window_s, "s") < pd.Timestamp(end), pd.Timestamp(end)
    )
    table = pd.DataFrame({"window_start": starts, "window_end": ends, "fills": counts})
    names = {"realized": "realized_fifo_quote", "cash": "cash_flow_quote", "fees": "fees_quote"}
    names |= {"volume": "volume_base", "notional": "notional_quote", "inv": "inventory_delta_base"}
    for key, column in names.items():
        table[column] = [float(v) for v in sums[key]]
    if mids is not None and len(mids):
        table["mid_start"] = mids.asof(pd.DatetimeIndex(starts)).to_numpy(dtype=float)
        table["mid_end"] = mids.asof(pd.DatetimeIndex(ends)).to_numpy(dtype=float)
    else:
        table["mid_start"] = np.nan
        table["mid_end"] = np.nan
    table["mid_return"] = table["mid_end"] / table["mid_start"] - 1.0
    return table[list(PNL_WINDOW_COLUMNS)]
