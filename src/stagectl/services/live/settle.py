"""The close of one run-live bar: read back, reconcile, one short write (docs/run-live.md).

1. read back, with no transaction open: the state of the run's open orders (an order
   other than a protective stop still open when its bar has closed is cancelled: it
   must not fill on top of the next bar's decision), the fills after the run's recorded
   cursor, the funding settlements of the last day, positions, balances, equity and marks;
2. settle on a copy of the run's carried book (``book.RunBook``): new fills go through
   the exact FIFO, new funding adds to the funding paid; the reconciliation is the
   broker's equity against the ledger's, ``initial + realized + unrealized - fees -
   funding`` with realized FIFO (gross of fees) and funding paid; the margin window;
   the sleeves of the equity snapshot (stamped at the bar close: the step is complete);
   alerts (a mark is stale by the exchange's timestamp of it, not by the bar close) and
   the signal checks against the backtest replay; the orders of the bar (and any
   refreshed one) that ended with part of them unfilled (``ORDER_REMAINDER``: the
   sleeve is re-sized at the next bar) and the real cost of a weekly rebalance
   (``services/live/rebalance.py``);
3. one short transaction records it all; only then does the loop keep the new book.

Nothing here reads the run's history: the book carries what a bar needs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from stagectl.domain.decide import DECISION
from stagectl.domain.ledger_book import fill_fee_quote
from stagectl.domain.rebalance import left_short, remainder_event
from stagectl.domain.types import (
    Event,
    Fill,
    FundingPayment,
    Order,
    OrderStatus,
    OrderType,
    Position,
)
from stagectl.services.live.artifacts import MARGIN_SNAPSHOT, RECONCILIATION
from stagectl.services.live.book import RunBook
from stagectl.services.live.feed import StepData
from stagectl.services.live.rebalance import Executed, record_settled, settle_plan
from stagectl.services.live.step import LiveContext
from stagectl.state import journal, ledger, orders
from stagectl.state.equity import EquitySnapshot, record_snapshots
from stagectl.state.fill_conflicts import FillConflict

_ZERO = Decimal(0)
MARGIN_SEVERITY = {"NORMAL": "INFO", "WARNING": "MEDIUM", "CRITICAL": "CRITICAL"}


@dataclass(frozen=True)
class ReadBack:
    """What the broker says after the bar, read with no transaction open."""

    fills: list[Fill]
    orders: list[Order]
    funding: list[FundingPayment]
    positions: dict[str, Position]
    equity: Decimal
    used_margin: Decimal
    marks: dict[str, Decimal]
    mark_times: dict[str, datetime]
    """The exchange's timestamp of each mark it gave (a symbol without one is valued at
    the bar's close and has no mark age)."""


@dataclass(frozen=True)
class Settlement:
    """A bar's settlement, computed before it is written."""

    book: RunBook
    fills: list[Fill]
    funding: list[FundingPayment]
    orders: list[Order]
    positions: dict[str, Position]
    recon: dict[str, Any]
    margin: dict[str, Any]
    sleeves: dict[str, Any]
    events: list[Event]
    rebalance: Executed | None = None
    realized: tuple[tuple[Fill, Decimal], ...] = ()
    """Each new fill with its FIFO realized PnL net of its fee: added to its decision."""


def settle(ctx: LiveContext, data: StepData, *, wall_now: datetime) -> dict[str, Any]:
    """Steps 1-3 of the module docstring; the loop's per-step outcome."""
    seen = read_back(ctx, data)
    settlement = compute(ctx, data, seen, wall_now)
    ctx.write("record the bar's settlement", lambda: _record(ctx, data, settlement))
    ctx.book = settlement.book
    return {
        "fills": len(settlement.fills),
        "reconciliation": settlement.recon,
        "margin": settlement.margin,
        "sleeves": settlement.sleeves,
        "positions": settlement.positions,
        "equity": seen.equity,
        "peak_equity": ctx.book.peak_equity,
    }


def read_back(ctx: LiveContext, data: StepData) -> ReadBack:
    """Step 1: the broker's view after the bar (no transaction is open here)."""
    broker, book, symbols = ctx.broker, ctx.book, list(data.sleeves)
    refreshed = _refresh_orders(ctx, data)
    fills: list[Fill] = []
    for symbol in symbols:
        since = book.fill_cursor.get(symbol) or ctx.fills_since or data.ts
        fills.extend(_ledger_fill(ctx, f) for f in broker.fills_since(symbol, since))
    fills = [f for f in fills if book.is_new_fill(f)]
    client_ids = orders.client_order_ids(
        ctx.db, ctx.run_id, [f.order_id for f in fills if f.client_order_id is None and f.order_id]
    )
    funding = broker.funding_since(book.funding_cursor(data.ts))
    marks = {s: b.bar.close for s, b in data.sleeves.items()}
    venue_marks = broker.marks(symbols)
    marks.update({s: m.price for s, m in venue_marks.items()})
    return ReadBack(
        fills=[
            f if f.client_order_id else replace(f, client_order_id=client_ids.get(f.order_id or ""))
            for f in fills
        ],
        orders=refreshed,
        funding=funding,
        positions={p.symbol: p for p in broker.positions()},
        equity=broker.equity(),
        used_margin=sum((b.used for b in broker.balances()), _ZERO),
        marks=marks,
        mark_times={s: m.ts for s, m in venue_marks.items()},
    )


def _refresh_orders(ctx: LiveContext, data: StepData) -> list[Order]:
    """The run's acknowledged open orders whose state moved at the venue; one other than a
    protective stop that is still open when its bar has closed is cancelled first (a
    market order left partly filled, a limit the loop did not cancel before a restart),
    so no remainder of it fills on top of the next bar's decision."""
    known = [
        o for o in orders.open_orders(ctx.db, run_id=ctx.run_id) if o.status != OrderStatus.NEW
    ]
    refreshed = []
    for order in known:
        venue = ctx.broker.fetch_order(order.symbol, client_order_id=order.client_order_id)
        if venue is not None and venue.status.is_open and order.type != OrderType.STOP_LIMIT:
            venue = ctx.broker.cancel(order.symbol, client_order_id=order.client_order_id)
        if venue is not None and (venue.status, venue.filled_qty) != (
            order.status,
            order.filled_qty,
        ):
            refreshed.append(order.acknowledged(venue, data.close_ts))
    return refreshed


def _ledger_fill(ctx: LiveContext, fill: Fill) -> Fill:
    """A venue fill as this run's ledger row: keyed ``SYMBOL:trade id`` under the venue."""
    return replace(
        fill,
        trade_id=ledger.ledger_trade_id(fill.symbol, fill.trade_id),
        account=ctx.exchange,
        run_id=ctx.run_id,
        source=ctx.mode,
    )


def compute(ctx: LiveContext, data: StepData, seen: ReadBack, wall_now: datetime) -> Settlement:
    """Step 2, on a copy of the carried book."""
    book = ctx.book.copy()
    fills = sorted(seen.fills, key=lambda f: (f.ts, f.trade_id))
    realized = tuple((fill, book.add_fill(fill) - fill_fee_quote(fill)) for fill in fills)
    funding = [p for p in seen.funding if _is_new_funding(ctx, book, data, p)]
    for payment in funding:
        book.add_funding(payment, data.close_ts)
    stopped = {
        o.symbol
        for o in seen.orders
        if o.type == OrderType.STOP_LIMIT and o.status == OrderStatus.FILLED
    }
    if stopped:
        book.targets = replace(book.targets, stopped=book.targets.stopped | stopped)
    short = _left_short(ctx, data, seen.orders)
    if short:
        symbols = {o.symbol for o in short} & set(data.sleeves)
        book.targets = replace(book.targets, unfilled=book.targets.unfilled | symbols)
    recon = reconcile(ctx, book, seen.marks, seen.equity, data.close_ts)
    book.peak_equity = max(book.peak_equity, float(seen.equity))
    margin = _margin(ctx, book, seen, data.close_ts)
    sleeves = _sleeves(ctx, book, data, seen.positions, recon)
    events = _settle_events(ctx, book, data, recon, margin, seen, wall_now)
    events.extend(
        remainder_event(o, data.close_ts, ctx.run_id, "the sleeve is re-sized at the next bar")
        for o in short
    )
    return Settlement(
        book,
        fills,
        funding,
        seen.orders,
        seen.positions,
        recon,
        margin,
        sleeves,
        events,
        rebalance=settle_plan(ctx, data, fills),
        realized=realized,
    )


def _left_short(ctx: LiveContext, data: StepData, refreshed: list[Order]) -> list[Order]:
    """The bar's orders, and the refreshed ones, that ended with a remainder no fallback
    carries (``domain.rebalance.left_short``)."""
    latest = {o.client_order_id: o for o in orders.decided_at(ctx.db, ctx.run_id, data.ts)}
    latest.update({o.client_order_id: o for o in refreshed})
    steps = {s: ctx.limits_for(s).qty_step for s in data.sleeves}
    return left_short(latest.values(), steps)


def _is_new_funding(
    ctx: LiveContext, book: RunBook, data: StepData, payment: FundingPayment
) -> bool:
    if payment.symbol not in data.sleeves or (payment.symbol, payment.ts) in book.funding_seen:
        return False
    # paid on a position from before the run
    return ctx.fills_since is None or payment.ts > ctx.fills_since


def reconcile(
    ctx: LiveContext, book: RunBook, marks: dict[str, Decimal], broker_equity: Decimal, ts: datetime
) -> dict[str, Any]:
    """The broker's equity against the ledger's: initial + realized + unrealized - fees -
    funding, with realized FIFO from the run's fills (gross of fees) and funding paid."""
    symbols = sorted(set(marks) | set(book.fifo.symbols) | set(book.funding_paid))
    per_symbol: dict[str, dict[str, Decimal]] = {}
    for symbol in symbols:
        fifo = book.fifo.book(symbol)
        mark = marks.get(symbol)
        per_symbol[symbol] = {
            "realized": fifo.realized_gross,
            "fees": fifo.fees,
            "funding": book.funding_paid.get(symbol, _ZERO),
            "unrealized": _ZERO if mark is None else fifo.unrealized(mark),
        }
    total = {
        key: sum((row[key] for row in per_symbol.values()), _ZERO)
        for key in ("realized", "fees", "funding", "unrealized")
    }
    ledger_equity = (
        ctx.initial_equity
        + total["realized"]
        + total["unrealized"]
        - total["fees"]
        - total["funding"]
    )
    drift = broker_equity - ledger_equity
    return {
        "ts": ts,
        "initial": float(ctx.initial_equity),
        "realized": float(total["realized"]),
        "unrealized": float(total["unrealized"]),
        "fees": float(total["fees"]),
        "funding": float(total["funding"]),
        "equity_broker": str(broker_equity),
        "equity_ledger": str(ledger_equity),
        "drift_usd": float(drift),
        "within_tolerance": abs(drift) <= ctx.tolerance_usd,
        "per_symbol": {s: {k: str(v) for k, v in row.items()} for s, row in per_symbol.items()},
        "positions": {s: str(book.fifo.book(s).position) for s in per_symbol},
    }


def _margin(ctx: LiveContext, book: RunBook, seen: ReadBack, ts: datetime) -> dict[str, Any]:
    equity = seen.equity
    utilisation = float(seen.used_margin / equity * 100) if equity > 0 else 100.0
    alerts = ctx.alerts
    window = "NORMAL"
    if utilisation > alerts.margin_critical_pct:
        window = "CRITICAL"
    elif utilisation > alerts.margin_warning_pct:
        window = "WARNING"
    previous = book.margin_window
    book.margin_window = window
    return {
        "ts": ts,
        "used_margin": str(seen.used_margin),
        "equity": str(equity),
        "utilization_pct": round(utilisation, 6),
        "window": window,
        "previous_window": previous,
        "transition": window != previous,
    }


def _sign(qty: Decimal) -> int:
    return 0 if qty == 0 else (1 if qty > 0 else -1)


def _sleeves(
    ctx: LiveContext,
    book: RunBook,
    data: StepData,
    positions: dict[str, Position],
    recon: dict[str, Any],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for symbol, sleeve in data.sleeves.items():
        held = positions.get(symbol)
        qty = _ZERO if held is None else held.qty
        row = {k: Decimal(v) for k, v in recon["per_symbol"][symbol].items()}
        start = Decimal(repr(sleeve.weight)) * ctx.initial_equity
        equity = start + row["realized"] + row["unrealized"] - row["fees"] - row["funding"]
        capital = float(equity) + book.transfers.get(symbol, 0.0)
        book.capital[symbol] = capital
        out[symbol] = {
            "equity": float(equity),
            "capital": capital,
            "position": book.targets.last.get(symbol, 0.0),
            "state": _sign(qty),
            "qty": str(qty),
            "mark": float(sleeve.bar.close),
            "held_target": sleeve.held_target,
            "stopped": symbol in book.targets.stopped,
            "unfilled": symbol in book.targets.unfilled,
        }
    return out


def _settle_events(
    ctx: LiveContext,
    book: RunBook,
    data: StepData,
    recon: dict[str, Any],
    margin: dict[str, Any],
    seen: ReadBack,
    wall_now: datetime,
) -> list[Event]:
    ts, run, positions = data.close_ts, ctx.run_id, seen.positions
    out = [
        Event(ts=ts, event_type=RECONCILIATION, run_id=run, payload=recon),
        Event(ts=ts, event_type=MARGIN_SNAPSHOT, run_id=run, payload=margin),
    ]
    if abs(recon["drift_usd"]) > ctx.alerts.reconciliation_drift_usd:
        out.append(
            _alert(ctx, ts, "HIGH", "RECONCILIATION_DRIFT", f"drift {recon['drift_usd']:.6f} USD")
        )
    if margin["transition"]:
        out.append(
            _alert(
                ctx,
                ts,
                MARGIN_SEVERITY[margin["window"]],
                f"MARGIN_{margin['window']}",
                f"margin utilisation {margin['utilization_pct']:.2f} % "
                f"({margin['previous_window']} -> {margin['window']})",
            )
        )
    out += _stale_marks(ctx, ts, seen.mark_times, wall_now)
    for symbol, sleeve in data.sleeves.items():
        if sleeve.replay_position is None:
            continue
        held = positions.get(symbol)
        replay = sleeve.replay_position
        out.append(
            Event(
                ts=data.ts,
                event_type="signal_check",
                run_id=run,
                symbol=symbol,
                payload={
                    "paper": _sign(_ZERO if held is None else held.qty),
                    "replay": 0 if replay == 0 else (1 if replay > 0 else -1),
                    "paper_target": book.targets.last.get(symbol, 0.0),
                    "replay_position": replay,
                },
            )
        )
    return out


def _stale_marks(
    ctx: LiveContext, ts: datetime, mark_times: dict[str, datetime], wall_now: datetime
) -> list[Event]:
    """A ``MARK_STALE`` alert per symbol whose mark is older than ``mark_stale_s``: its age
    is the exchange's clock when the loop saw the bar close (``wall_now``) minus the
    exchange's timestamp of the mark, so a loop that reads the bar late is not a stale
    mark, and a mark the exchange stopped updating is one however early the loop is."""
    out = []
    for symbol, stamp in sorted(mark_times.items()):
        age_s = (wall_now - stamp).total_seconds()
        if age_s > ctx.alerts.mark_stale_s:
            stamped = stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")
            message = f"{symbol} mark is {age_s:.0f} s old (exchange time {stamped})"
            extra = {"mark_ts": stamped, "age_s": round(age_s, 3)}
            out.append(_alert(ctx, ts, "MEDIUM", "MARK_STALE", message, symbol, extra))
    return out


def _alert(
    ctx: LiveContext,
    ts: datetime,
    severity: str,
    action: str,
    message: str,
    symbol: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Event:
    return Event(
        ts=ts,
        event_type="ALERT",
        severity=severity,
        run_id=ctx.run_id,
        symbol=symbol,
        action=action,
        message=message,
        payload={"alert": action, **(extra or {})},
    )


def _record(ctx: LiveContext, data: StepData, done: Settlement) -> None:
    """Step 3: everything the bar settled, inside the caller's one transaction."""
    db = ctx.db
    if done.fills:
        counts = ledger.insert_fills(db, done.fills)
        journal.record_events(db, [_conflict_alert(ctx, data, c) for c in counts.conflicts])
    for order in done.orders:
        orders.upsert_order(db, order)
    if done.funding:
        _record_funding(ctx, data, done.funding)
    _record_positions(ctx, data, done.positions)
    recon = done.recon
    record_snapshots(
        db,
        [
            EquitySnapshot(
                run_id=ctx.run_id,
                ts=data.close_ts,
                equity=float(Decimal(recon["equity_broker"])),
                realized=recon["realized"],
                unrealized=recon["unrealized"],
                fees=recon["fees"],
                funding=recon["funding"],
                sleeves=done.sleeves,
            )
        ],
    )
    journal.record_events(db, done.events)
    for fill, pnl in done.realized:
        journal.attribute_realized(
            db, run_id=ctx.run_id, symbol=fill.symbol, at=fill.ts, amount=float(pnl),
            event_type=DECISION,
        )  # fmt: skip
    if done.rebalance is not None:
        record_settled(ctx, data, done.rebalance)


def _conflict_alert(ctx: LiveContext, data: StepData, conflict: FillConflict) -> Event:
    """A fill the venue reported for a trade the ledger already holds with other values:
    the ledger keeps its record (as ``metrics import`` refuses such a file), and the
    operator must find out which is right (docs/ledger.md, "One trade, one fill")."""
    stored = conflict.stored
    where = f"run {stored.run_id}" if stored.run_id else stored.source
    if stored.import_origin:
        where = f"import of {stored.import_origin}"
    changed = ", ".join(f"{name} {new} (recorded {old})" for name, new, old in conflict.differences)
    message = (
        f"trade {conflict.symbol}:{conflict.trade_id} is recorded (fill {stored.fill_id}, "
        f"{where}) with other values: {changed}; the ledger kept its record"
    )
    extra = {
        "trade_id": conflict.trade_id,
        "stored_fill_id": stored.fill_id,
        "differences": [list(d) for d in conflict.differences],
    }
    return _alert(ctx, data.close_ts, "CRITICAL", "FILL_CONFLICT", message, conflict.symbol, extra)


def _record_funding(ctx: LiveContext, data: StepData, funding: list[FundingPayment]) -> None:
    """The run's new settlements, with the feed's rate where the venue gave none."""
    rates = {(s, ts): r for s, b in data.sleeves.items() for ts, r in b.funding}
    ledger.insert_funding(
        ctx.db,
        [
            replace(
                p,
                account=ctx.account,
                run_id=ctx.run_id,
                rate=p.rate if p.rate is not None else rates.get((p.symbol, p.ts), _ZERO),
            )
            for p in funding
        ],
    )


def _record_positions(ctx: LiveContext, data: StepData, positions: dict[str, Position]) -> None:
    for symbol in data.sleeves:
        held = positions.get(symbol) or Position(symbol, _ZERO, _ZERO)
        ledger.upsert_position(
            ctx.db,
            replace(held, account=ctx.account, run_id=ctx.run_id, updated_at=data.close_ts),
        )
