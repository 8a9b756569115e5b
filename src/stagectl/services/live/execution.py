"""The execution router in run-live's order path (docs/run-live.md, "Working a parent order").

At the open of a bar, every sleeve order the decision sends goes through
``domain.execution.choose_style`` (notional, the spread of the broker's book or 0 without
one, the signal's persistence over the last bars, the average bar dollar volume; an order
that reduces risk because the trading state, a directive or a breaker asks is urgent and
stays MARKET). Then:

- a style that sends one order keeps the decided order (the limit/market rule: the
  loop's sleeve orders are market orders, as before the router), except POST_ONLY, a
  limit at the near side of the book with TIF GTX where the broker supports post-only
  (GTC otherwise);
- a sliced style (TWAP, POV, iceberg) records the order as a *parent* (``state.parents``)
  and sends its first child now; the next bars' opens send one child each
  (:func:`next_children`) until the parent is done. Each child is a market order whose
  client id derives from the parent's and its index, recorded with the parent's progress
  in the bar's write-ahead transaction: a restart redoing the bar rebuilds the same
  child, which the state and the exchange refuse to send twice.

A working parent is cancelled (its remaining slices never sent) when the trading state is
no longer ACTIVE (the kill switch, reduce-only, a flatten) or a new decision on its
symbol supersedes it. ``decide`` sees the position a working parent will leave
(:func:`projected_positions`), so an unchanged target sends nothing beside the slices.
Events: ``EXECUTION_STYLE`` per routed order (style, reason, slices planned),
``ORDER_SLICE`` per child, ``PARENT_CANCELED`` and ``PARENT_DONE``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from stagectl.domain.execution import (
    ExecutionStyle,
    SliceSettings,
    StyleInputs,
    StyleThresholds,
    child_qty,
    choose_style,
    plan_parent,
)
from stagectl.domain.orders import child_order_id
from stagectl.domain.types import Event, Order, OrderStatus, OrderType, TimeInForce, TradingState
from stagectl.services.live.feed import SleeveBar, StepData
from stagectl.state import orders, parents
from stagectl.state.db import StateDB
from stagectl.state.parents import ParentOrder

EXECUTION_STYLE = "EXECUTION_STYLE"
ORDER_SLICE = "ORDER_SLICE"
PARENT_CANCELED = "PARENT_CANCELED"
PARENT_DONE = "PARENT_DONE"
_BPS = Decimal(10_000)


@dataclass(frozen=True)
class RouterSettings:
    """The router's thresholds (seed 001 #8) and how parents are cut."""

    thresholds: StyleThresholds = field(default_factory=StyleThresholds)
    slices: SliceSettings = field(default_factory=SliceSettings)


@dataclass(frozen=True)
class Routed:
    """What the router made of a bar's decision: the orders to record (children in place
    of their parents), the parents to record or move along, and the events."""

    orders: tuple[Order, ...]
    parents: tuple[ParentOrder, ...]
    events: tuple[Event, ...]


def projected_positions(
    held: Mapping[str, Decimal], working: Sequence[ParentOrder]
) -> dict[str, Decimal]:
    """Each symbol's position once its working parents' unsent slices have filled."""
    out = dict(held)
    for parent in working:
        left = parent.qty - parent.sent_qty
        out[parent.symbol] = out.get(parent.symbol, Decimal(0)) + parent.side.sign * left
    return out


def cancel(parent: ParentOrder, now: datetime, why: str) -> tuple[ParentOrder, Event]:
    """The parent with its remaining slices cancelled, and the event saying why."""
    canceled = replace(parent, status=parents.CANCELED, updated_at=now, note=why)
    return canceled, Event(
        ts=now,
        event_type=PARENT_CANCELED,
        severity="MEDIUM",
        run_id=parent.run_id,
        symbol=parent.symbol,
        message=f"{parent.plan.style.value} parent canceled: {why}",
        payload={
            "parent_id": parent.parent_id,
            "style": parent.plan.style.value,
            "sent_qty": str(parent.sent_qty),
            "qty": str(parent.qty),
            "slices_sent": parent.next_index,
        },
    )


def to_cancel(
    working: Sequence[ParentOrder], state: TradingState, superseded: set[str], now: datetime
) -> list[tuple[ParentOrder, Event]]:
    """The working parents that stop here: all of them when trading is no longer ACTIVE
    (kill switch, reduce-only, flatten), and those of a symbol with a new decision."""
    out = []
    for parent in working:
        if state != TradingState.ACTIVE:
            out.append(cancel(parent, now, f"trading state {state.value}"))
        elif parent.symbol in superseded:
            out.append(cancel(parent, now, "a new decision on the symbol supersedes it"))
    return out


def route(
    db: StateDB,
    books: Mapping[str, tuple[Decimal, Decimal] | None],
    post_only: bool,
    settings: RouterSettings,
    data: StepData,
    decided: Sequence[Order],
    *,
    run_id: str,
    account: str,
    urgent: set[str],
    steps: Mapping[str, Decimal],
    live: bool = False,
) -> Routed:
    """Route the decision's sleeve orders (``books``: the broker's best bid and ask, read
    before the transaction; ``urgent``: the symbols whose reducing orders are risk
    orders); inside the write-ahead transaction (a redo finds its parents)."""
    out: list[Order] = []
    new_parents: list[ParentOrder] = []
    events: list[Event] = []
    for order in decided:
        sleeve = data.sleeves.get(order.symbol)
        if order.status != OrderStatus.NEW or order.type != OrderType.MARKET or sleeve is None:
            out.append(order)
            continue
        book = books.get(order.symbol)
        inputs = StyleInputs(
            notional_usd=order.qty * sleeve.decision_price,
            spread_bps=_spread_bps(book),
            signal_persistence=persistence(sleeve, order),
            avg_bar_volume_usd=sleeve.avg_dollar_volume or sleeve.prev_dollar_volume,
            urgent=order.reduce_only and order.symbol in urgent,
        )
        choice = choose_style(inputs, settings.thresholds)
        step = steps[order.symbol]
        plan = plan_parent(
            choice, order.qty, sleeve.decision_price, step, inputs.avg_bar_volume_usd,
            settings.slices,
        )  # fmt: skip
        events.append(_style_event(order, plan.style.value, plan.reason, plan.planned, inputs))
        if not plan.sliced:
            out.append(_single(order, plan.style, book, post_only))
            continue
        parent = parents.get_parent(db, order.client_order_id) or ParentOrder(
            parent_id=order.client_order_id,
            run_id=run_id,
            symbol=order.symbol,
            side=order.side,
            qty=order.qty,
            price=sleeve.decision_price,
            reduce_only=order.reduce_only,
            plan=plan,
            created_at=data.ts,
        )
        child, moved, more = _child(
            db, parent, sleeve, data.ts, step, settings.slices, account=account, live=live
        )
        new_parents.append(moved)
        out.extend([] if child is None else [child])
        events.extend(more)
    return Routed(tuple(out), tuple(new_parents), tuple(events))


def next_children(
    db: StateDB,
    working: Sequence[ParentOrder],
    data: StepData,
    steps: Mapping[str, Decimal],
    settings: RouterSettings,
    *,
    account: str,
    live: bool = False,
) -> Routed:
    """The next child of every working parent decided at an earlier bar."""
    out: list[Order] = []
    moved_parents: list[ParentOrder] = []
    events: list[Event] = []
    for parent in working:
        sleeve = data.sleeves.get(parent.symbol)
        if sleeve is None or parent.created_at == data.ts:
            continue
        step = steps[parent.symbol]
        child, moved, more = _child(
            db, parent, sleeve, data.ts, step, settings.slices, account=account, live=live
        )
        moved_parents.append(moved)
        out.extend([] if child is None else [child])
        events.extend(more)
    return Routed(tuple(out), tuple(moved_parents), tuple(events))


def persistence(sleeve: SleeveBar, order: Order) -> float:
    """The share of the recent bars whose signal had the order's sign (0: none known)."""
    signs = sleeve.recent_signs
    if not signs:
        return 0.0
    return sum(1 for s in signs if s == order.side.sign) / len(signs)


def _child(
    db: StateDB,
    parent: ParentOrder,
    sleeve: SleeveBar,
    now: datetime,
    step: Decimal,
    settings: SliceSettings,
    *,
    account: str,
    live: bool,
) -> tuple[Order | None, ParentOrder, list[Event]]:
    """The parent's child at this bar and the parent moved along. Redone at the same bar
    (a restart), the child already recorded is returned as it was, the parent unchanged."""
    if parent.last_bar == now:
        cid = child_order_id(parent.parent_id, parent.next_index - 1)
        recorded = orders.get_order(db, cid)
        if recorded is None:
            return None, parent, []
        return replace(recorded, parent_id=parent.parent_id), parent, []
    if parent.status != parents.WORKING:
        return None, parent, []
    index = parent.next_index
    qty = child_qty(
        parent.plan, parent.qty, index, parent.sent_qty, price=sleeve.decision_price,
        bar_volume_usd=sleeve.prev_dollar_volume, step=step, settings=settings,
    )  # fmt: skip
    if qty <= 0:
        done = replace(parent, status=parents.DONE, updated_at=now)
        return None, done, [_done_event(done, now)]
    child = Order(
        client_order_id=child_order_id(parent.parent_id, index),
        symbol=parent.symbol,
        side=parent.side,
        type=OrderType.MARKET,
        qty=qty,
        created_at=now,
        price=sleeve.decision_price,
        reduce_only=parent.reduce_only,
        account=account,
        run_id=parent.run_id,
        parent_id=parent.parent_id,
    )
    sent = parent.sent_qty + qty
    finished = sent >= parent.qty
    moved = replace(
        parent,
        next_index=index + 1,
        sent_qty=sent,
        last_bar=now,
        updated_at=now,
        status=parents.DONE if finished else parents.WORKING,
    )
    fills = "venue" if live else "1m bars" if sleeve.fine else "bar"
    events = [_slice_event(moved, child, index, sleeve, fills)]
    if finished:
        events.append(_done_event(moved, now))
    return child, moved, events


def _single(
    order: Order, style: ExecutionStyle, book: tuple[Decimal, Decimal] | None, post_only: bool
) -> Order:
    """The one order of a style that does not slice: the decided order, or for POST_ONLY a
    limit at the near side of the book (the bid for a buy), GTX where supported."""
    if style != ExecutionStyle.POST_ONLY or book is None:
        return order
    bid, ask = book
    return replace(
        order,
        type=OrderType.LIMIT,
        price=bid if order.side.sign > 0 else ask,
        time_in_force=TimeInForce.GTX if post_only else TimeInForce.GTC,
    )


def _spread_bps(book: tuple[Decimal, Decimal] | None) -> float:
    if book is None:
        return 0.0
    bid, ask = book
    mid = (bid + ask) / 2
    if bid <= 0 or ask < bid:
        return 0.0
    return float(((ask - bid) / mid * _BPS).quantize(Decimal("0.0001"), rounding=ROUND_DOWN))


def _style_event(order: Order, style: str, reason: str, planned: int, inputs: StyleInputs) -> Event:
    return Event(
        ts=order.created_at,
        event_type=EXECUTION_STYLE,
        run_id=order.run_id,
        symbol=order.symbol,
        action=order.side.value,
        size_usd=float(inputs.notional_usd),
        message=f"{style}: {reason}",
        payload={
            "client_order_id": order.client_order_id,
            "style": style,
            "reason": reason,
            "slices_planned": planned,
            "spread_bps": inputs.spread_bps,
            "signal_persistence": round(inputs.signal_persistence, 4),
            "avg_bar_volume_usd": str(inputs.avg_bar_volume_usd),
            "urgent": inputs.urgent,
        },
    )


def _slice_event(
    parent: ParentOrder, child: Order, index: int, sleeve: SleeveBar, fills: str
) -> Event:
    return Event(
        ts=child.created_at,
        event_type=ORDER_SLICE,
        run_id=parent.run_id,
        symbol=parent.symbol,
        action=child.side.value,
        size_usd=float(child.qty * sleeve.decision_price),
        payload={
            "parent_id": parent.parent_id,
            "client_order_id": child.client_order_id,
            "style": parent.plan.style.value,
            "index": index,
            "slices_planned": parent.plan.planned,
            "qty": str(child.qty),
            "sent_qty": str(parent.sent_qty),
            "parent_qty": str(parent.qty),
            "fills_against": fills,
        },
    )


def _done_event(parent: ParentOrder, now: datetime) -> Event:
    return Event(
        ts=now,
        event_type=PARENT_DONE,
        run_id=parent.run_id,
        symbol=parent.symbol,
        payload={
            "parent_id": parent.parent_id,
            "style": parent.plan.style.value,
            "slices_sent": parent.next_index,
            "qty": str(parent.qty),
        },
    )
