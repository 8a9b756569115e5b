"""run-live's own risk guard and the FLATTEN_ALL latch (seed 003 §4.2, §6.3).

After each settled bar the loop calls ``LoopGuard.after_bar``:

1. **latch**: when a FLATTEN_ALL binds the run (``domain.directives.binds``) the bar
   just traded its sleeves to 0. Once the book is flat the directive is *executed* and
   the mode's trading state is latched HALTED (source ``FLATTEN_ALL``), in one
   transaction with a ``DIRECTIVE_EXECUTED`` event and incident note; until then the
   mode is REDUCE_ONLY. Only a restart (``trading enable``, ``services.trading.restart``)
   lifts the latch.
2. **guard**: at the first bar close of each ``guard.every_minutes`` slot (hourly) the
   risk guard judges the run as of that close: the decision cron's ``risk-guard --now``
   would make, computed incrementally (``services.guard.stream``: only the rows recorded
   since the last evaluation are read, the indicators are carried, so an evaluation
   costs the same on day 1 and day 365), then recorded, notified and escalated by cron's
   own code (``services.guard.live.conclude``) on the loop's connection. The guard config
   is parsed once. An hour that cron evaluated already is not recorded twice (and the
   other way round). A paper run sends no notification (``PAPER_DELIVERY``: every
   channel, Telegram, the webhook and apprise's, is reported skipped): its clock is a
   replay's, and a historical alarm on the desk's phone is noise; a live run notifies
   as cron does.

Everything worth telling the operator comes back as lines (``on_alert``): a guard
decision other than NO_ACTION, a directive issued, executed or escalated, each step of a
directive's re-evaluation (recovered, kept, worsened), a latch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagectl.config.home import Home
from stagectl.domain.directives import FLATTEN_ALL, DirectiveState, Review
from stagectl.domain.jsonable import utc_minute
from stagectl.domain.types import OrderStatus, Position, TradingState
from stagectl.notify.dispatch import Delivery
from stagectl.services.live.step import LiveContext
from stagectl.services.trading.directives import record_step
from stagectl.state import directives, flags, orders

if TYPE_CHECKING:
    from stagectl.config.home import ConfigSource
    from stagectl.config.risk_guard import RiskGuardConfig
    from stagectl.services.guard.stream import IncrementalGuard

LATCH_SOURCE = FLATTEN_ALL
REVIEW_STEPS = tuple(r.value for r in Review)
QUIET_ACTIONS = ("NO_ACTION", "LOW")
PAPER_DELIVERY = Delivery(muted="a paper run's own guard notifies nobody: its clock is a replay's")


@dataclass
class LoopGuard:
    """The in-loop guard of one run: where its config is, how often, what it last did."""

    home: Home
    config: Path | None
    every: timedelta
    enabled: bool = True
    last_slot: datetime | None = None
    last_said: str | None = None
    """The last alarming decision told (action and rules; None when quiet): a standing
    one is not repeated hourly, and the return to quiet is told once."""
    env: dict[str, str] | None = None
    """Where notifiers read their tokens (None: the environment); a paper run passes {}."""
    delivery: Delivery | None = None
    """How alerts are sent (None: as cron sends them); a paper run's is muted."""
    settings: tuple[RiskGuardConfig, ConfigSource] | None = None
    """The guard config, parsed once, and where it came from (None: loaded from ``config``
    at the first evaluation)."""
    stream: IncrementalGuard | None = None
    """The run's incremental guard, carried from one evaluation to the next."""

    def after_bar(
        self, ctx: LiveContext, close_ts: datetime, positions: dict[str, Position]
    ) -> list[str]:
        """Latch, then (when due) the guard; the lines to tell the operator."""
        lines = latch(ctx, close_ts, positions)
        if self.enabled and self._due(close_ts):
            lines += self._evaluate(ctx, close_ts)
        return lines

    def _due(self, close_ts: datetime) -> bool:
        epoch = datetime(1970, 1, 1, tzinfo=close_ts.tzinfo)
        slot = close_ts - (close_ts - epoch) % self.every
        if slot == self.last_slot:
            return False
        self.last_slot = slot
        return True

    def _evaluate(self, ctx: LiveContext, close_ts: datetime) -> list[str]:
        from stagectl.config.loader import load_risk_guard
        from stagectl.services.guard.live import conclude
        from stagectl.services.guard.stream import IncrementalGuard

        if self.settings is None:
            self.settings = load_risk_guard(self.home, self.config)
        config, source = self.settings
        if self.stream is None or self.stream.run_id != ctx.run_id:
            self.stream = IncrementalGuard(config, run_id=ctx.run_id, mode=ctx.mode)
        stream = self.stream
        judged = ctx.retrying("evaluate the risk guard", lambda: stream.evaluate(ctx.db, close_ts))
        decision = judged.decision
        written, notifications, reviewed = ctx.retrying(
            "record the risk guard's decision",
            lambda: conclude(
                self.home,
                ctx.db,
                config,
                source,
                judged.history,
                decision,
                now=close_ts,
                dry_run=False,
                env=self.env,
                delivery=self.delivery,
            ),
        )
        if written.already_evaluated:
            return []
        lines = []
        rules = ", ".join(sorted({h["rule"] for h in decision["hits"]}))
        quiet = decision["action"] in QUIET_ACTIONS
        said = None if quiet else f"{decision['action']} ({decision['severity']}): {rules}"
        if said != self.last_said:
            told = said or f"{decision['action']} (back from {self.last_said})"
            lines.append(f"risk guard {utc_minute(close_ts)}: {told}")
        self.last_said = said
        lines += [directive_line(d) for d in [*written.directives, *reviewed]]
        lines += escalation_lines(notifications)
        return lines


def escalation_lines(notifications: list[dict[str, Any]]) -> list[str]:
    """One line per escalation alert, whichever channels it went to (or not)."""
    escalated = {
        tuple(n["directives"])
        for n in notifications
        if n.get("alert") == "escalation" and n.get("directives")
    }
    return [f"escalated: directive(s) {list(ids)}" for ids in sorted(escalated)]


def directive_line(d: dict[str, Any]) -> str:
    """A directive the guard issued, or a step of its re-evaluation, as one line."""
    name = f"directive {d['id']} {d['action']}{' ' + d['sleeve'] if d['sleeve'] else ''}"
    if d.get("step") in REVIEW_STEPS:
        return f"{name} {d['step']}: {d['note']}"
    when = (
        f" until {utc_minute(d['confirm_by'])}"
        if d["confirm_by"]
        else " (paper: executes at the next bar)"
    )
    return f"{name}: {d['state']}{when}" + (f"; {d['note']}" if d.get("note") else "")


def latch(ctx: LiveContext, close_ts: datetime, positions: dict[str, Position]) -> list[str]:
    """Step 1 of the module docstring; the lines to tell."""
    binding = [
        d
        for d in directives.active_directives(
            ctx.db, mode=ctx.mode, now=close_ts, run_id=ctx.run_id
        )
        if d.action == FLATTEN_ALL
    ]
    if not binding:
        return []
    state = flags.get_trading_state(ctx.db, ctx.mode).state
    flat = all(p.qty == 0 for p in positions.values())
    if flat:
        _cancel_open_orders(ctx, close_ts)
        to_execute = [d for d in binding if d.state != DirectiveState.EXECUTED]
        if not to_execute and state == TradingState.HALTED:
            return []
        ctx.write("latch the flattened book", lambda: _execute(ctx, to_execute, close_ts))
        ids = ", ".join(str(d.id) for d in to_execute) or "in force"
        return [
            f"FLATTEN_ALL {ids} executed at {utc_minute(close_ts)}: the book is flat; "
            f"{ctx.mode} trading latched HALTED (restart: stagectl trading enable "
            f"--{ctx.mode} --signed-off-by NAME --cause TEXT)"
        ]
    if state == TradingState.ACTIVE:
        reason = f"FLATTEN_ALL {binding[0].id} in force: flattening"
        ctx.write(
            "set reduce-only while flattening",
            lambda: flags.set_trading_state(
                ctx.db,
                ctx.mode,
                TradingState.REDUCE_ONLY,
                reason=reason,
                source=LATCH_SOURCE,
                now=close_ts,
            ),
        )
        return [f"{ctx.mode} trading REDUCE_ONLY: {reason}"]
    return []


def _cancel_open_orders(ctx: LiveContext, now: datetime) -> None:
    """``cancel_open_orders``: every order of the run still resting at the venue (a stop,
    a limit) is cancelled before the latch; broker calls first, then one write."""
    resting = [
        o for o in orders.open_orders(ctx.db, run_id=ctx.run_id) if o.status != OrderStatus.NEW
    ]
    if not resting:
        return
    canceled = [
        o.acknowledged(ctx.broker.cancel(o.symbol, client_order_id=o.client_order_id), now)
        for o in resting
    ]

    def record() -> None:
        for order in canceled:
            orders.upsert_order(ctx.db, order)

    ctx.write("record the flatten's cancels", record)


def _execute(ctx: LiveContext, binding: list[directives.RiskDirective], now: datetime) -> None:
    for d in binding:
        executed = replace(d, state=DirectiveState.EXECUTED, executed_at=now)
        directives.update_directive(ctx.db, executed)
        record_step(
            ctx.db,
            executed,
            "executed",
            now,
            by=f"run-live {ctx.run_id}",
            note="book flat, orders cancelled; trading latched HALTED",
            severity="CRITICAL",
        )
    flags.set_trading_state(
        ctx.db,
        ctx.mode,
        TradingState.HALTED,
        reason="FLATTEN_ALL executed: the book is flat; latched until a restart "
        "(stagectl trading enable)",
        source=LATCH_SOURCE,
        now=now,
    )
