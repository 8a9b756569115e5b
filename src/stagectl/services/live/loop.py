"""The run-live loops: one bar step shared by paper and live (docs/run-live.md).

A step is open (read, decide, write ahead, send: ``step``) -> [a weekly rebalance's limit
orders work for their timeout, then their remainder goes at market: ``work_limits``] ->
the market moves -> settle (read back, reconcile, write: ``settle``). The broker, the
"market" phase and the "patience" of the limit orders are the only differences:

- paper: the paper broker runs bar k and its funding settlements, at once; a limit's
  timeout is the bar's open (``PaperBroker.process_open``: seconds of an hourly bar);
- live: the loop waits, on the exchange's clock, for bar k to close, then reads the
  closed bar from the exchange (fills, funding and positions are the exchange's); a
  limit's timeout is that many seconds on the exchange's clock.

Restart (both): a step whose snapshot is missing is redone. A live step whose bar has
already closed when the loop comes back is settled only (its orders were decided at
its open, which has passed); the loop then trades the bar in progress if its open is
within the grace (``live_exchange.late_grace``), else waits for the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from stagectl.domain.decide import StopInputs, protective_stops
from stagectl.domain.jsonable import utc_minute
from stagectl.domain.rebalance import REBALANCE_FALLBACK, fallback_order, remainder_event
from stagectl.domain.types import Order, OrderStatus, OrderType
from stagectl.services.live import settle as live_settle
from stagectl.services.live import step as live_step
from stagectl.services.live.artifacts import build_artifacts, write_artifact_files
from stagectl.services.live.exchange import Clock, ExchangeFeed, next_bar_to_trade
from stagectl.services.live.feed import ReplayFeed, StepData
from stagectl.services.live.guard import LoopGuard
from stagectl.state import journal, orders
from stagectl.state.equity import last_snapshot_ts
from stagectl.state.latency import BarLatency, record_latency

Market = Callable[[StepData], tuple[StepData, datetime] | None]
"""Moves the market over a step's bar: the closed step and the time, or None (stopped)."""
Patience = Callable[[StepData, float], bool]
"""Lets limit orders placed at a step's open work for that many seconds; False: stopped."""
StepCallback = Callable[[StepData, dict[str, Any]], None]


@dataclass
class LoopControl:
    """What the caller gives a loop: stop flag, per-step callback, artifact settings."""

    should_stop: Callable[[], bool]
    on_step: StepCallback | None
    settings: dict[str, Any]
    artifacts_interval_s: float
    duration: timedelta | None = None
    speed: float | None = None
    end: datetime | None = None
    guard: LoopGuard | None = None
    """The in-loop risk guard and FLATTEN_ALL latch (None: ``guard.enabled: false``)."""
    on_alert: Callable[[str], None] | None = None
    """Told what the operator must see: guard decisions, directives, the latch."""


def step(
    ctx: live_step.LiveContext, data: StepData, market: Market, patience: Patience
) -> dict[str, Any] | None:
    """One bar: open (decide, record, send), work a rebalance's limit orders, let the market
    move, settle. None: stopped while the bar was still open (the restart settles or
    redoes it).

    The outcome also carries the run id, the codes of the orders the policy denied at
    the open and ``latency_s``: the time the open and the settlement took, without the
    waits for the market and for limit orders (run-live's metrics, docs/metrics.md)."""
    began = time.perf_counter()
    opened = live_step.open_bar(ctx, data)
    latency_s = time.perf_counter() - began
    counts = dict(opened.counts)
    if opened.rebalance_limits:
        worked = work_limits(ctx, data, opened.rebalance_limits, opened.limit_timeout_s, patience)
        if worked is None:
            return None
        for key, value in worked.items():
            counts[key] += value
    moved = market(data)
    if moved is None:
        return None
    closed, wall_now = moved
    began = time.perf_counter()
    settled = live_settle.settle(ctx, closed, wall_now=wall_now)
    if ctx.stop_limits:
        for key, value in place_stops(ctx, closed, settled).items():
            counts[key] += value
    settle_s = time.perf_counter() - began
    record_latency_of(ctx, data, latency_s, settle_s)
    decided = {
        "run_id": ctx.run_id,
        "trading_state": opened.trading_state,
        "multipliers": opened.decision.multipliers,
        "directive_multipliers": opened.directive_multipliers,
        "denied": tuple(
            o.reason or "DENIED" for o in opened.decision.orders if o.status == OrderStatus.DENIED
        ),
        "latency_s": latency_s + settle_s,
    }
    return {**decided, **counts, **settled}


def record_latency_of(
    ctx: live_step.LiveContext, data: StepData, open_s: float, settle_s: float
) -> None:
    """Persist the bar's loop latency (``state.latency``; ``stagectl health`` reads it)."""
    row = BarLatency(ctx.run_id, data.ts, open_s * 1000.0, settle_s * 1000.0, datetime.now(UTC))
    ctx.write("record the bar's latency", lambda: record_latency(ctx.db, row))


def place_stops(
    ctx: live_step.LiveContext, data: StepData, settled: dict[str, Any]
) -> dict[str, int]:
    """The protective stop-limits after the bar: cancel the stale ones, record and send
    the new ones (``domain.decide.protective_stops``); no transaction spans a broker call."""
    open_stops = [
        o
        for o in orders.open_orders(ctx.db, run_id=ctx.run_id)
        if o.type == OrderType.STOP_LIMIT and o.status != OrderStatus.NEW
    ]
    decision = protective_stops(
        StopInputs(
            run_id=ctx.run_id,
            account=ctx.exchange,
            bar_ts=data.ts,
            close_ts=data.close_ts,
            equity=settled["equity"],
            positions=settled["positions"],
            open_stops=open_stops,
            closes={s: b.bar.close for s, b in data.sleeves.items()},
            dollar_volumes={s: b.prev_dollar_volume for s, b in data.sleeves.items()},
            limits=ctx.limits,
        )
    )
    canceled = [
        stop.acknowledged(ctx.broker.cancel(stop.symbol, client_order_id=stop.client_order_id),
                          data.close_ts)
        for stop in decision.cancel
    ]  # fmt: skip

    def record() -> list[Any]:
        for stop in canceled:
            orders.upsert_order(ctx.db, stop)
        journal.record_events(ctx.db, decision.events)
        return live_step.record_orders(ctx, decision.place)

    to_send = ctx.write("record the protective stops", record)
    return live_step.send(ctx, to_send, data.close_ts)


def work_limits(
    ctx: live_step.LiveContext,
    data: StepData,
    limit_ids: tuple[str, ...],
    timeout_s: float,
    patience: Patience,
) -> dict[str, int] | None:
    """A weekly rebalance's limit orders after their timeout: one not filled is cancelled,
    and its remainder is recorded as a market order (``domain.rebalance.fallback_order``,
    a deterministic id) before it is sent. Redone after a restart it waits again, finds
    the limits cancelled and the fallbacks recorded, and sends only one still ``new``. No
    transaction is open during a broker call. None: stopped while waiting."""
    limits = [o for o in (orders.get_order(ctx.db, cid) for cid in limit_ids) if o is not None]
    working = [o for o in limits if o.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)]
    if working and not patience(data, timeout_s):
        return None
    ended: list[Order] = []
    for limit in limits:
        if limit in working:
            venue = ctx.broker.fetch_order(limit.symbol, client_order_id=limit.client_order_id)
            if venue is not None and venue.status.is_open:
                venue = ctx.broker.cancel(limit.symbol, client_order_id=limit.client_order_id)
            if venue is not None:
                limit = limit.acknowledged(venue, data.ts)
        ended.append(limit)
    fallbacks = {
        limit.client_order_id: fallback
        for limit in ended
        if (fallback := fallback_order(limit, ctx.limits_for(limit.symbol).qty_step)) is not None
    }

    def record() -> list[Order]:
        fresh = [
            f for f in fallbacks.values() if orders.get_order(ctx.db, f.client_order_id) is None
        ]
        for limit in ended:
            orders.upsert_order(ctx.db, limit)
        journal.record_events(
            ctx.db,
            [
                replace(
                    remainder_event(
                        limit, data.ts, ctx.run_id, f"sent at market as {fallback.client_order_id}"
                    ),
                    event_type=REBALANCE_FALLBACK,
                    severity="INFO",
                )
                for limit in ended
                if (fallback := fallbacks.get(limit.client_order_id)) in fresh
            ],
        )
        return live_step.record_orders(ctx, fallbacks.values())

    to_send = ctx.write("record the rebalance's market orders", record)
    return live_step.send(ctx, to_send, data.ts)


def paper_patience(ctx: live_step.LiveContext, broker: Any) -> Patience:
    """Paper: the limits meet the bar's open only (``PaperBroker.process_open``), as one
    write of the paper book. Seconds of an hourly bar are its open: a limit left resting
    through the whole bar would get maker fills that a 10 s order never could."""

    def at_open(data: StepData, timeout_s: float) -> bool:
        def run_open() -> None:
            for symbol, sleeve in data.sleeves.items():
                broker.process_open(symbol, sleeve.bar)

        ctx.write("run the paper bar's open", run_open)
        return True

    return at_open


def live_patience(clock: Clock) -> Patience:
    """Live: wait the timeout on the exchange's clock (SIGINT and SIGTERM stop the wait)."""

    def wait(data: StepData, timeout_s: float) -> bool:
        return clock.wait_until(clock.now() + timedelta(seconds=timeout_s))

    return wait


def paper_market(ctx: live_step.LiveContext, broker: Any) -> Market:
    """The paper broker runs the bar and its funding settlements, as one write of its book
    (no network: the paper market is local; each call is safe to redo for the same bar,
    so a locked database is retried)."""

    def one_bar(data: StepData) -> None:
        for symbol, sleeve in data.sleeves.items():
            broker.process_bar(symbol, sleeve.bar, sleeve.fine)
            for ts, rate in sleeve.funding:
                broker.settle_funding(symbol, ts, rate)

    def run_bar(data: StepData) -> tuple[StepData, datetime]:
        ctx.write("run the paper bar", lambda: one_bar(data))
        return data, data.close_ts

    return run_bar


def live_market(feed: ExchangeFeed, clock: Clock) -> Market:
    def wait_for_close(data: StepData) -> tuple[StepData, datetime] | None:
        if not clock.wait_until(data.close_ts):
            return None
        now = clock.now()
        return feed.close_step(data, now), now

    return wait_for_close


class _Tally:
    """Counts a step into the result; writes the artifacts every interval."""

    def __init__(self, ctx: live_step.LiveContext, result: Any, control: LoopControl) -> None:
        self.ctx, self.result, self.control = ctx, result, control
        self.last_save = time.monotonic()
        self.trading_state: str | None = None
        self.multipliers: dict[str, float] | None = None

    def add(self, data: StepData, outcome: dict[str, Any]) -> None:
        self._count(data, outcome)
        lines = self._changes(data, outcome)
        guard = self.control.guard
        if guard is not None:
            lines += guard.after_bar(self.ctx, data.close_ts, outcome["positions"])
        if self.control.on_alert is not None:
            for line in lines:
                self.control.on_alert(line)

    def _changes(self, data: StepData, outcome: dict[str, Any]) -> list[str]:
        """The trading state and the directives' multipliers the bar obeyed, when they
        differ from the previous bar's."""
        lines = []
        state, multipliers = outcome.get("trading_state"), outcome.get("directive_multipliers")
        if state is not None and state != self.trading_state:
            if self.trading_state is not None:
                lines.append(f"{utc_minute(data.ts)} trading state {self.trading_state} -> {state}")
            self.trading_state = state
        if multipliers is not None and multipliers != self.multipliers:
            if self.multipliers is not None:
                shown = ", ".join(f"{s} x{m:g}" for s, m in multipliers.items())
                lines.append(f"{utc_minute(data.ts)} risk directives: {shown}")
            self.multipliers = dict(multipliers)
        return lines

    def _count(self, data: StepData, outcome: dict[str, Any]) -> None:
        result = self.result
        result.bars += 1
        result.first_bar = result.first_bar or data.ts
        result.last_bar = data.ts
        result.orders_sent += outcome.get("sent", 0)
        result.orders_recovered += outcome.get("recovered", 0)
        result.fills += outcome["fills"]
        drift = abs(outcome["reconciliation"]["drift_usd"])
        result.max_abs_drift_usd = max(result.max_abs_drift_usd, drift)
        if self.control.on_step is not None:
            self.control.on_step(data, outcome)
        if time.monotonic() - self.last_save >= self.control.artifacts_interval_s:
            write_artifact_files(
                result.artifacts_dir,
                build_artifacts(self.ctx.db, self.ctx.run_id, self.control.settings),
            )
            self.last_save = time.monotonic()


def paper_loop(
    ctx: live_step.LiveContext, feed: ReplayFeed, first: int, result: Any, control: LoopControl
) -> str:
    started = time.monotonic()
    tally = _Tally(ctx, result, control)
    resume_ts = feed.index[first].to_pydatetime() if first < feed.bars else None
    result.orders_recovered += recover_pending(ctx, resume_ts)
    market = paper_market(ctx, ctx.broker)
    patience = paper_patience(ctx, ctx.broker)
    for data in feed.steps(first):
        first_bar = result.first_bar
        if control.duration is not None and first_bar and data.ts - first_bar >= control.duration:
            return "completed"
        outcome = step(ctx, data, market, patience)
        assert outcome is not None  # the paper market never stops mid-bar
        tally.add(data, outcome)
        if control.should_stop():
            return "aborted"
        _pace(control.speed, feed.step, started, result.bars)
    return "completed"


def live_loop(
    ctx: live_step.LiveContext,
    feed: ExchangeFeed,
    clock: Clock,
    result: Any,
    control: LoopControl,
) -> str:
    """Trade each bar as it opens until ``control.end`` (the last bar's open) or a stop."""
    tally = _Tally(ctx, result, control)
    market = live_market(feed, clock)
    patience = live_patience(clock)
    done_until = last_snapshot_ts(ctx.db, ctx.run_id)
    bar_ts = feed.first_bar if done_until is None else done_until
    while control.end is None or bar_ts <= control.end:
        if control.should_stop():
            return "aborted"
        now = clock.now()
        if now >= bar_ts + feed.step:  # we are late: that bar has closed
            if _step_started(ctx, bar_ts):
                if not wait_out_in_flight(ctx, clock):
                    return "aborted"
                result.orders_recovered += recover_pending(ctx, None)
                data = feed.close_step(feed.open_step(bar_ts, now), now)
                tally.add(data, settle_only(ctx, data, now))
            bar_ts = next_bar_to_trade(now, feed.step)
            continue
        if now < bar_ts and not clock.wait_until(bar_ts):
            return "aborted"
        if not wait_out_in_flight(ctx, clock):
            return "aborted"
        result.orders_recovered += recover_pending(ctx, bar_ts)
        data = feed.open_step(bar_ts, max(now, bar_ts))
        outcome = step(ctx, data, market, patience)
        if outcome is None:
            return "aborted"
        tally.add(data, outcome)
        bar_ts += feed.step
    return "completed"


def settle_only(ctx: live_step.LiveContext, data: StepData, now: datetime) -> dict[str, Any]:
    """Finish a step whose orders were decided and sent before an interruption."""
    began = time.perf_counter()
    settled = live_settle.settle(ctx, data, wall_now=now)
    latency_s = time.perf_counter() - began
    counts = {"sent": 0, "recovered": 0, "rejected": 0}
    return {"run_id": ctx.run_id, **counts, **settled, "denied": (), "latency_s": latency_s}


def _step_started(ctx: live_step.LiveContext, bar_ts: datetime) -> bool:
    """The decide transaction of that bar committed (its ``signal`` events exist)."""
    found = journal.events(
        ctx.db,
        run_id=ctx.run_id,
        event_type="signal",
        start=bar_ts,
        end=bar_ts + timedelta(microseconds=1),
        limit=1,
    )
    return bool(found)


def _pace(speed: float | None, bar: timedelta, started: float, bars: int) -> None:
    """``--speed Nx``: one bar every ``bar / N`` of wall time; ``max``: no waiting."""
    if speed is None:
        return
    due = started + bars * bar.total_seconds() / speed
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)


IN_FLIGHT_WAIT = timedelta(seconds=12)
"""How long a create sent before a crash can still land: ccxt signs with a 10 s
``recvWindow`` and Binance refuses a request it processes later than that, so after
this wait an order the exchange does not know was never placed and never will be."""


def wait_out_in_flight(ctx: live_step.LiveContext, clock: Clock) -> bool:
    """Before looking up orders left ``new`` by an interrupted step, let any create
    still in flight land (or expire), so the lookup cannot miss an order the exchange
    is about to accept and the redo cannot send it a second time. False: stopped."""
    pending = [
        o for o in orders.open_orders(ctx.db, run_id=ctx.run_id) if o.status == OrderStatus.NEW
    ]
    if not pending:
        return True
    return clock.wait_until(clock.now() + IN_FLIGHT_WAIT)


def recover_pending(ctx: live_step.LiveContext, resume_ts: datetime | None) -> int:
    """Orders recorded but never acknowledged from an interrupted step: look each up by
    client order id; the broker's answer is recorded. One unknown to the broker and not
    of the bar being redone is marked ``not_sent`` (the redo decides afresh)."""
    recovered = 0
    for order in orders.open_orders(ctx.db, run_id=ctx.run_id):
        if order.status != OrderStatus.NEW:
            continue
        venue = ctx.broker.fetch_order(order.symbol, client_order_id=order.client_order_id)
        if venue is not None:
            recovered += 1
            _record_order(ctx, order.acknowledged(venue, order.created_at))
        elif resume_ts is None or order.created_at != resume_ts:
            lost = replace(
                order, status=OrderStatus.NOT_SENT, reason="unknown to the broker on restart"
            )
            _record_order(ctx, lost)
    return recovered


def _record_order(ctx: live_step.LiveContext, order: Order) -> None:
    ctx.write("record an order", lambda: orders.upsert_order(ctx.db, order))
