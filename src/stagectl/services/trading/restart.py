"""``stagectl trading enable`` of a latched mode: the runbook's restart (seed 003 §4.5).

After a FLATTEN_ALL executes, the mode is latched: its trading state is HALTED and the
executed directive keeps every sleeve at 0. Lifting that latch is a restart, allowed
only when every condition of ``domain.restart`` holds: a cause note, the strategy's
20-day Sharpe > 0, its 60-day backtest Sharpe > 0.3, drawdown < 8 % and a named sign-off.
The figures come from the strategy's unguarded backtest over the 60 days up to the as-of
time (the latched run's last bar for a finished or replayed run, else the wall clock).

- every condition holds: one transaction revokes the latching directives, sets the
  mode ACTIVE and records a ``RESTART`` event and an incident note with the cause;
- any fails: nothing changes, the checks say which (exit 1);
- ``override`` (with a reason): the restart happens anyway and is recorded as
  ``RESTART_OVERRIDE`` with the failing conditions and who overrode them.

A mode that is not latched (HALTED by an operator, say) is simply enabled.

Entry: ``run(RestartRequest, *, home, clock) -> RestartResult``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagectl.config.home import Home
from stagectl.config.state_url import StateLocation, state_exists
from stagectl.domain.directives import FLATTEN_ALL, DirectiveState
from stagectl.domain.jsonable import utc_minute
from stagectl.domain.restart import SHARPE_LONG_DAYS, RestartCheck, StrategyHealth
from stagectl.domain.types import Event, Mode, TradingState
from stagectl.errors import InputError
from stagectl.services.trading import flags as trading_flags
from stagectl.services.trading.directives import record_step
from stagectl.state import directives, equity, flags, journal, runs
from stagectl.state.db import StateDB, open_state

if TYPE_CHECKING:
    from stagectl.config.strategy import StrategyConfig
    from stagectl.domain.backtest import BacktestResult

Clock = Callable[[], datetime]
SOURCE = "RESTART"


@dataclass(frozen=True)
class RestartRequest:
    """``trading enable`` (or ``trading revoke`` of a FLATTEN_ALL): the mode, who signs
    off, the cause note, the reason, whether failing conditions are overridden, the guard
    config (None: the home's) and the market data (None: the strategy's)."""

    mode: Mode
    reason: str
    signed_off_by: str | None = None
    cause: str | None = None
    override: bool = False
    guard_config: Path | None = None
    data_dir: Path | None = None
    now: datetime | None = None


@dataclass(frozen=True)
class RestartResult:
    """What the restart found and did (``change`` is None when it was refused)."""

    path: StateLocation
    mode: Mode
    latched_by: tuple[directives.RiskDirective, ...]
    checks: tuple[RestartCheck, ...]
    as_of: datetime | None
    window: str
    change: flags.TradingFlagChange | None

    @property
    def latched(self) -> bool:
        return bool(self.latched_by)

    @property
    def conditions_hold(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def restarted(self) -> bool:
        return self.change is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "state_db": str(self.path),
            "mode": self.mode,
            "latched": self.latched,
            "latched_by": [d.id for d in self.latched_by],
            "as_of": self.as_of,
            "backtest_window": self.window,
            "conditions_hold": self.conditions_hold,
            "checks": [
                {
                    "condition": c.condition,
                    "required": c.required,
                    "found": c.found,
                    "passed": c.passed,
                }
                for c in self.checks
            ],
            "changes": []
            if self.change is None
            else trading_flags.TradingChange(self.path, (self.change,)).to_dict()["changes"],
        }


def latch(db: StateDB, mode: Mode, now: datetime) -> tuple[directives.RiskDirective, ...]:
    """The FLATTEN_ALL directives that bind ``mode`` at ``now`` (active or executed)."""
    return tuple(
        d
        for d in directives.open_directives(db, mode=mode, now=now)
        if d.action == FLATTEN_ALL and d.binds(now)
    )


def run(
    request: RestartRequest, *, home: Home, clock: Clock = lambda: datetime.now(UTC)
) -> RestartResult:
    """Check the restart conditions of a latched mode and restart it when they hold (or
    are overridden); enable a mode that is not latched."""
    reason = request.reason.strip()
    if not reason:
        raise InputError("a trading state change needs a reason", where="--reason")
    if request.override and not (request.signed_off_by or "").strip():
        raise InputError("an override needs the name of who signs it off", where="--signed-off-by")
    path, wall = home.state_path, clock()
    latched_by: tuple[directives.RiskDirective, ...] = ()
    if state_exists(path):
        with open_state(path) as db:
            latched_by = latch(db, request.mode, wall)
            as_of = request.now or (_as_of(db, latched_by, wall) if latched_by else wall)
    if not latched_by:
        enabled = trading_flags.run_set(
            trading_flags.TradingSetRequest(TradingState.ACTIVE, (request.mode,), reason),
            home=home,
            clock=lambda: wall,
        )
        return RestartResult(path, request.mode, (), (), None, "", enabled.changes[0])
    health, window = _strategy_health(home, request, as_of)
    from stagectl.config.loader import load_risk_guard
    from stagectl.domain.restart import restart_checks

    config, _ = load_risk_guard(home, request.guard_config)
    checks = restart_checks(
        config.restart_conditions,
        health,
        cause=request.cause,
        signed_off_by=request.signed_off_by,
    )
    result = RestartResult(path, request.mode, latched_by, checks, as_of, window, None)
    if not result.conditions_hold and not request.override:
        return result
    with open_state(path) as db, db.transaction():
        change = _restart(db, request, result, reason, wall)
    return replace(result, change=change)


def _as_of(
    db: StateDB, latched_by: tuple[directives.RiskDirective, ...], wall: datetime
) -> datetime:
    """The latched run's clock: its last bar when it no longer runs (a finished or
    replayed run), else the wall clock."""
    run_id = latched_by[-1].run_id
    run = None if run_id is None else runs.get_run(db, run_id)
    if run is None or run.status == "running":
        return wall
    return equity.last_snapshot_ts(db, run.run_id) or wall


def _strategy_health(
    home: Home, request: RestartRequest, as_of: datetime
) -> tuple[StrategyHealth, str]:
    """The unguarded strategy's figures at ``as_of`` and the backtest window used."""
    from stagectl.config.loader import load_guard_strategy, load_risk_guard
    from stagectl.domain.restart import strategy_health

    config, source = load_risk_guard(home, request.guard_config)
    strategy, _ = load_guard_strategy(home, config, source)
    try:
        result, window = strategy_backtest(
            strategy, request.data_dir, as_of, timedelta(days=SHARPE_LONG_DAYS)
        )
    except InputError as error:
        empty = StrategyHealth(as_of, None, None, None)
        return empty, f"no backtest: {error.message}"
    health = StrategyHealth.last(strategy_health(result.net_returns, result.equity))
    return health, window


def strategy_backtest(
    strategy: StrategyConfig,
    data_dir: Path | None,
    as_of: datetime,
    days: timedelta,
    *,
    symbol: str | None = None,
) -> tuple[BacktestResult, str]:
    """The strategy's unguarded backtest over the ``days`` up to ``as_of`` (one bar more,
    so a ``days``-long rolling figure is defined at its end), of one sleeve alone when
    ``symbol`` is given; and the window used, as text. InputError when the data does not
    cover it. Also what the risk guard's sleeve review runs (seed 003 §4.4)."""
    from stagectl.domain.backtest import run_backtest
    from stagectl.services.strategy.sleeves import build_sleeves

    start = as_of - days - timedelta(hours=1)
    sleeves, info = build_sleeves(strategy, data_dir, start, as_of, symbol=symbol)
    result = run_backtest(
        sleeves,
        fee_bps=strategy.costs.fee_bps,
        slippage_bps=strategy.costs.slippage_bps,
        initial_equity=strategy.initial_equity_usd,
        signal_delay=strategy.execution.signal_delay_bars,
    )
    return result, f"{utc_minute(info.start)} .. {utc_minute(info.end)}"


def _restart(
    db: StateDB, request: RestartRequest, result: RestartResult, reason: str, now: datetime
) -> flags.TradingFlagChange:
    """Revoke the latch, set ACTIVE, record the restart (or its override)."""
    signer = (request.signed_off_by or "").strip() or "operator"
    overridden = not result.conditions_hold
    failing = [c.condition for c in result.checks if not c.passed]
    step = "revoked (restart override)" if overridden else "revoked (restart)"
    for d in result.latched_by:
        lifted = replace(
            d,
            state=DirectiveState.REVOKED,
            revoked_at=now,
            closed_by=signer,
            reason=f"{d.reason + '; ' if d.reason else ''}{step} by {signer}: {reason}",
        )
        directives.update_directive(db, lifted)
        record_step(db, lifted, step, now, by=signer, note=reason)
    kind = "RESTART_OVERRIDE" if overridden else SOURCE
    cause = (request.cause or "").strip()
    message = (
        f"{request.mode} restarted by {signer}"
        + (f" OVERRIDING {', '.join(failing)}" if overridden else "")
        + f": {reason}"
        + (f"; cause: {cause}" if cause else "")
    )
    journal.record_event(
        db,
        Event(
            ts=now,
            event_type=kind,
            severity="HIGH",
            action="ENABLE",
            message=message,
            payload={
                "mode": request.mode,
                "signed_off_by": signer,
                "cause": cause,
                "override": overridden,
                "failing": failing,
                "directives": [d.id for d in result.latched_by],
            },
        ),
    )
    journal.record_incident(
        db,
        journal.Incident(
            ts=now,
            rule=kind,
            severity="HIGH",
            action="ENABLE",
            message=message,
            guard_decision_id=result.latched_by[-1].guard_decision_id,
        ),
    )
    return flags.set_trading_state(
        db, request.mode, TradingState.ACTIVE, reason=message, source=kind, now=now
    )
