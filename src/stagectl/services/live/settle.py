"""Step 4 of a run-live bar step: settle (docs/run-live.md, "One bar step").

Fills fetched from the run's last known fill and inserted idempotently, order states,
funding payments, positions, reconciliation, the equity snapshot (stamped at the bar
close: the step is complete), margin and mark alerts, and the signal checks against
the backtest replay, all in one transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from stagectl.domain import ledger as fifo
from stagectl.services.live.artifacts import MARGIN_SNAPSHOT, RECONCILIATION
from stagectl.services.live.feed import StepData
from stagectl.services.live.step import LiveContext, account_equity, acked
from stagectl.state import journal, ledger, orders
from stagectl.state.equity import EquitySnapshot, record_snapshots

_ZERO = Decimal(0)
_RECON_KEYS = ("realized", "fees", "funding", "unrealized")
MARGIN_SEVERITY = {"NORMAL": "INFO", "WARNING": "MEDIUM", "CRITICAL": "CRITICAL"}


def settle(ctx: LiveContext, data: StepData, *, wall_now: datetime) -> dict[str, Any]:
    """Step 4: fills, orders, funding, positions, stops, reconciliation, snapshot, alerts."""
    db = ctx.db
    with db.transaction():
        new_fills = _ingest_fills(ctx, data)
        _refresh_orders(ctx, data.close_ts)
        _ingest_funding(ctx, data)
        book = ctx.broker.positions()
        held = {p.symbol: (p.amount, p.entry_price) for p in book}
        for symbol in data.sleeves:
            qty, entry = held.get(symbol, (_ZERO, _ZERO))
            ledger.upsert_position(
                db,
                ledger.Position(ctx.account, symbol, qty, entry, data.close_ts, ctx.run_id),
            )
        marks = _marks(ctx, data, book)
        recon = reconcile(ctx, marks, data.close_ts)
        margin = _margin(ctx, recon["equity_broker_dec"], data.close_ts)
        sleeves = _sleeves(ctx, data, held, recon)
        record_snapshots(
            db,
            [
                EquitySnapshot(
                    run_id=ctx.run_id,
                    ts=data.close_ts,
                    equity=float(recon["equity_broker_dec"]),
                    realized=recon["realized"],
                    unrealized=recon["unrealized"],
                    fees=recon["fees"],
                    funding=recon["funding"],
                    sleeves=sleeves,
                )
            ],
        )
        events = _settle_events(ctx, data, recon, margin, held, wall_now)
        journal.record_events(db, events)
    return {"fills": new_fills, "reconciliation": recon, "margin": margin, "sleeves": sleeves}


def _marks(ctx: LiveContext, data: StepData, book: list[Any]) -> dict[str, Decimal]:
    """Paper: the bar closes. Exchange: the mark price its unrealized PnL uses, where it
    reports one (the bar close otherwise), so both sides of the reconciliation agree."""
    marks = {s: b.bar.close for s, b in data.sleeves.items()}
    if not ctx.paper:
        for position in book:
            if position.symbol in marks and position.mark_price:
                marks[position.symbol] = position.mark_price
    return marks


def _last_fill_ts(ctx: LiveContext, symbol: str, default: datetime) -> datetime:
    run_fills = ledger.fills(ctx.db, symbol=symbol, run_id=ctx.run_id)
    if run_fills:
        return run_fills[-1].ts
    return default if ctx.fills_since is None else max(default, ctx.fills_since)


def _ingest_fills(ctx: LiveContext, data: StepData) -> int:
    rows: list[ledger.Fill] = []
    for symbol in data.sleeves:
        since = _last_fill_ts(ctx, symbol, data.ts - timedelta(days=7))
        for fill in ctx.broker.fetch_fills(symbol, since):
            cid = _cid_of(ctx, symbol, fill.order_id)
            rows.append(
                ledger.Fill(
                    exchange=ctx.exchange,
                    trade_id=ledger.ledger_trade_id(symbol, fill.trade_id),
                    symbol=symbol,
                    side=fill.side,
                    qty=fill.amount,
                    price=fill.price,
                    fee=fill.fee,
                    ts=fill.timestamp,
                    source="paper" if ctx.paper else "live",
                    fee_currency=fill.fee_currency or None,
                    liquidity="maker" if fill.maker else "taker",
                    run_id=ctx.run_id,
                    client_order_id=cid,
                    exchange_order_id=fill.order_id,
                )
            )
    return ledger.insert_fills(ctx.db, rows).inserted


def _cid_of(ctx: LiveContext, symbol: str, exchange_order_id: str) -> str | None:
    """The client order id of this run's order with that exchange id (paper ids repeat
    across runs, each run being its own paper account)."""
    row = ctx.db.conn.execute(
        "SELECT client_order_id FROM orders WHERE run_id = ? AND symbol = ?"
        " AND exchange_order_id = ?",
        (ctx.run_id, symbol, exchange_order_id),
    ).fetchone()
    return None if row is None else str(row[0])


def _refresh_orders(ctx: LiveContext, now: datetime) -> None:
    for order in orders.open_orders(ctx.db, run_id=ctx.run_id):
        if order.status == "new":
            continue
        ack = ctx.broker.fetch_order(order.symbol, client_order_id=order.client_order_id)
        if ack is None:
            continue
        updated = acked(order, ack, now)
        orders.upsert_order(ctx.db, updated)
        if order.type == "stop_limit" and updated.status == "filled":
            ctx.memory.stopped.add(order.symbol)


def _ingest_funding(ctx: LiveContext, data: StepData) -> None:
    rates = {(s, ts): r for s, b in data.sleeves.items() for ts, r in b.funding}
    payments = ctx.broker.funding_payments(data.ts - timedelta(days=1))
    rows = []
    for p in payments:
        if p.symbol not in data.sleeves:
            continue
        if ctx.fills_since is not None and p.timestamp <= ctx.fills_since:
            continue  # paid on a position from before the run
        qty = ctx.broker.position_qty(p.symbol) if ctx.paper else None
        rows.append(
            ledger.FundingPayment(
                source=ctx.account,
                symbol=p.symbol,
                ts=p.timestamp,
                rate=rates.get((p.symbol, p.timestamp), _ZERO),
                amount=-p.amount,
                position_qty=qty,
                run_id=ctx.run_id,
            )
        )
    ledger.insert_funding(ctx.db, rows)


def reconcile(ctx: LiveContext, marks: dict[str, Decimal], ts: datetime) -> dict[str, Any]:
    """The broker's equity against the ledger's: initial + realized + unrealized - fees -
    funding, with realized FIFO from the run's fills (gross of fees) and funding paid."""
    run_fills = ledger.fills(ctx.db, run_id=ctx.run_id)
    book = [
        fifo.Fill(
            trade_id=f.trade_id,
            ts=f.ts,
            symbol=f.symbol,
            side="buy" if f.side == "buy" else "sell",
            qty=f.qty,
            price=f.price,
            fee=f.fee,
            fee_currency=f.fee_currency or "USDT",
            liquidity="maker" if f.liquidity == "maker" else "taker",
        )
        for f in run_fills
    ]
    result = fifo.fifo_realized(book)
    per_symbol: dict[str, dict[str, Decimal]] = {
        s: {"realized": _ZERO, "fees": _ZERO, "funding": _ZERO, "unrealized": _ZERO} for s in marks
    }
    for i, fill in enumerate(book):
        row = per_symbol.setdefault(
            fill.symbol, {"realized": _ZERO, "fees": _ZERO, "funding": _ZERO, "unrealized": _ZERO}
        )
        row["realized"] += result.realized(i) + fill.fee
        row["fees"] += fill.fee
    for payment in ledger.funding_payments(ctx.db):
        if payment.run_id == ctx.run_id and payment.symbol in per_symbol:
            per_symbol[payment.symbol]["funding"] += payment.amount
    for symbol, mark in marks.items():
        per_symbol[symbol]["unrealized"] = result.unrealized(symbol, mark)
    total = {
        k: sum((row[k] for row in per_symbol.values()), _ZERO)
        for k in per_symbol[next(iter(per_symbol))]
    }
    ledger_equity = (
        ctx.initial_equity
        + total["realized"]
        + total["unrealized"]
        - total["fees"]
        - total["funding"]
    )
    broker_equity = account_equity(ctx)
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
        "equity_broker_dec": broker_equity,
        "drift_usd": float(drift),
        "within_tolerance": abs(drift) <= ctx.tolerance_usd,
        "per_symbol": {s: {k: str(v) for k, v in row.items()} for s, row in per_symbol.items()},
        "positions": {s: str(result.inventory(s)) for s in per_symbol},
    }


def _margin(ctx: LiveContext, equity: Decimal, ts: datetime) -> dict[str, Any]:
    used = sum((b.used for b in ctx.broker.balances()), _ZERO)
    utilisation = float(used / equity * 100) if equity > 0 else 100.0
    alerts = ctx.alerts
    window = "NORMAL"
    if utilisation > alerts.margin_critical_pct:
        window = "CRITICAL"
    elif utilisation > alerts.margin_warning_pct:
        window = "WARNING"
    previous = ctx.memory.margin_window
    ctx.memory.margin_window = window
    return {
        "ts": ts,
        "used_margin": str(used),
        "equity": str(equity),
        "utilization_pct": round(utilisation, 6),
        "window": window,
        "previous_window": previous,
        "transition": window != previous,
    }


def _sleeves(
    ctx: LiveContext,
    data: StepData,
    held: dict[str, tuple[Decimal, Decimal]],
    recon: dict[str, Any],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for symbol, sleeve in data.sleeves.items():
        qty = held.get(symbol, (_ZERO, _ZERO))[0]
        row = {k: Decimal(v) for k, v in recon["per_symbol"][symbol].items()}
        start = Decimal(repr(sleeve.weight)) * ctx.initial_equity
        equity = start + row["realized"] + row["unrealized"] - row["fees"] - row["funding"]
        out[symbol] = {
            "equity": float(equity),
            "position": ctx.memory.last_target.get(symbol, 0.0),
            "state": 0 if qty == 0 else (1 if qty > 0 else -1),
            "qty": str(qty),
            "mark": float(sleeve.bar.close),
            "held_target": sleeve.held_target,
            "stopped": symbol in ctx.memory.stopped,
        }
    return out


def _settle_events(
    ctx: LiveContext,
    data: StepData,
    recon: dict[str, Any],
    margin: dict[str, Any],
    held: dict[str, tuple[Decimal, Decimal]],
    wall_now: datetime,
) -> list[journal.Event]:
    ts, run = data.close_ts, ctx.run_id
    payload = {k: v for k, v in recon.items() if k != "equity_broker_dec"}
    out = [
        journal.Event(ts=ts, event_type=RECONCILIATION, run_id=run, payload=payload),
        journal.Event(ts=ts, event_type=MARGIN_SNAPSHOT, run_id=run, payload=margin),
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
    mark_age_s = (wall_now - data.close_ts).total_seconds()
    if mark_age_s > ctx.alerts.mark_stale_s:
        out.append(_alert(ctx, ts, "MEDIUM", "MARK_STALE", f"mark is {mark_age_s:.0f} s old"))
    for symbol, sleeve in data.sleeves.items():
        if sleeve.replay_position is None:
            continue
        qty = held.get(symbol, (_ZERO, _ZERO))[0]
        state = 0 if qty == 0 else (1 if qty > 0 else -1)
        replay = sleeve.replay_position
        out.append(
            journal.Event(
                ts=data.ts,
                event_type="signal_check",
                run_id=run,
                symbol=symbol,
                payload={
                    "paper": state,
                    "replay": 0 if replay == 0 else (1 if replay > 0 else -1),
                    "paper_target": ctx.memory.last_target.get(symbol, 0.0),
                    "replay_position": replay,
                },
            )
        )
    return out


def _alert(
    ctx: LiveContext, ts: datetime, severity: str, action: str, message: str
) -> journal.Event:
    return journal.Event(
        ts=ts,
        event_type="ALERT",
        severity=severity,
        run_id=ctx.run_id,
        action=action,
        message=message,
        payload={"alert": action},
    )
