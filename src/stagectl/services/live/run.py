"""``stagectl run-live``: the trading loop, paper by default (docs/run-live.md).

Which database: the home's one state database (``HOME/state/stagectl.db``, or
``--state``/``STAGECTL_STATE``), for paper and live runs alike; a run records its mode
and account. Each paper run has its own paper account (``paper:<run id>``), so runs
never share a book; a live run's account is the exchange id (``binanceusdm``). The
loops are in ``loop``: paper replays bars through the paper broker, live trades each
bar as it closes on the exchange (``exchange``: closed bars, the exchange's clock, the
ccxt broker).

Which run: ``--resume RUN`` continues that run; without it the latest unfinished
run-live run of the same mode (status ``running`` after a crash, or ``aborted`` after
SIGINT/SIGTERM) is resumed, and ``--new-run`` starts a fresh one. A resumed run keeps
the parameters it was started with (data, window, options; recorded in its
``RUN_STARTED`` event) and continues at the bar after its last equity snapshot.

Entry: ``run(RunLiveRequest, *, home, should_stop, on_step, broker_factory, wall_clock,
live_broker, clock, on_alert) -> RunLiveResult`` (the hooks are described on ``run``).
``live_credentials_source`` is the one other function the CLI calls: it checks that live
credentials exist, and names their source, before the operator is asked to confirm a
live run, which happens before the loop (and its terminal view) starts.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from stagectl.config.home import ConfigSource, Home
from stagectl.config.loader import (
    file_sha256,
    load_risk_guard,
    load_risk_presets,
    load_stage3,
    load_strategy,
)
from stagectl.domain.order_policy import PolicyLimits, SymbolCap
from stagectl.domain.types import Event, OrderType
from stagectl.errors import InputError
from stagectl.services.live import loop as live_loop
from stagectl.services.live import step as live_step
from stagectl.services.live.artifacts import build_artifacts, write_artifact_files
from stagectl.services.live.book import load_run_book
from stagectl.services.live.exchange import (
    Clock,
    ExchangeClock,
    ExchangeFeed,
    live_params,
    open_live_broker,
    qty_steps,
)
from stagectl.services.live.feed import ReplayFeed, data_end
from stagectl.services.live.guard import LoopGuard
from stagectl.services.live.loop import StepCallback
from stagectl.services.live.step import retry_locked
from stagectl.state import directives, flags, journal, orders, runs
from stagectl.state.db import StateDB, open_state
from stagectl.state.equity import last_snapshot_ts
from stagectl.state.paper_book import StatePaperStore
from stagectl.state.runs import reopen_run

KIND = "run-live"
RUN_STARTED = "RUN_STARTED"
DEFAULT_WINDOW = timedelta(days=30)
MAKER_FEE_BPS = Decimal(2)  # Binance USD-M regular tier (domain.costs' default venue)


@dataclass(frozen=True)
class RunLiveRequest:
    """Every run-live option, parsed: the config files, paper or live, the window
    (``--start``/``--end``/``--duration``), the replay data and speed, which run, and the
    order and risk switches."""

    config: Path | None = None
    stage3: Path | None = None
    live: bool = False
    exchange: str = "binanceusdm"
    duration: timedelta | None = None
    replay_data: Path | None = None
    speed: float | None = None
    start: datetime | None = None
    end: datetime | None = None
    resume: str | None = None
    new_run: bool = False
    stop_limits: bool = False
    position_limits: bool = True
    artifacts_interval_s: float = 300.0
    base_url: str | None = None
    timeout_ms: int = 10_000
    breakers: bool = True
    guard: bool = True
    """Evaluate the strategy config's in-loop risk guard (its ``guard`` section)."""


@dataclass
class RunLiveResult:
    run_id: str
    mode: str
    status: str
    resumed: bool
    state_path: Path
    artifacts_dir: Path
    config: ConfigSource
    bars: int = 0
    first_bar: datetime | None = None
    last_bar: datetime | None = None
    orders_sent: int = 0
    orders_recovered: int = 0
    fills: int = 0
    equity: float | None = None
    max_abs_drift_usd: float = 0.0
    positions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    trading_state: str | None = None
    """The mode's trading state when the run stopped."""
    orders_denied: dict[str, int] = field(default_factory=dict)
    """The run's orders the pre-trade policy refused, by code (TRADING_HALTED...)."""

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "status": self.status,
            "resumed": self.resumed,
            "state": str(self.state_path),
            "artifacts": str(self.artifacts_dir),
            "config": self.config.describe(),
            "bars": self.bars,
            "first_bar": self.first_bar,
            "last_bar": self.last_bar,
            "orders_sent": self.orders_sent,
            "orders_recovered": self.orders_recovered,
            "fills": self.fills,
            "equity": self.equity,
            "max_abs_drift_usd": self.max_abs_drift_usd,
            "positions": self.positions,
            "trading_state": self.trading_state,
            "orders_denied": self.orders_denied,
            "notes": self.notes,
        }


def live_credentials_source() -> str:
    """Where the exchange credentials come from (never the secrets); exit 2 when none."""
    from stagectl.exchange.credentials import require_credentials

    return require_credentials().source


def _policy_limits(stage3: Any, *, position_limits: bool) -> PolicyLimits:
    caps = {
        symbol: SymbolCap(Decimal(repr(lim.max_size)), Decimal(repr(lim.max_notional_usd)))
        for symbol, lim in stage3.symbols.items()
    }
    return PolicyLimits(
        max_impact_bps=Decimal(repr(stage3.risk.max_impact_bps)),
        leverage_limit=Decimal(repr(stage3.risk.leverage_limit)),
        stop_distance_pct=Decimal(repr(stage3.risk.stop_distance_pct)),
        allowed={k: tuple(v) for k, v in stage3.orders.allowed.items()},
        gated={k: tuple(v) for k, v in stage3.orders.gated.items()},
        symbol_caps=caps if position_limits else {},
    )


def run(
    request: RunLiveRequest,
    *,
    home: Home,
    should_stop: Callable[[], bool] = lambda: False,
    on_step: StepCallback | None = None,
    broker_factory: Callable[..., Any] | None = None,
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    live_broker: Any | None = None,
    clock: Clock | None = None,
    on_alert: Callable[[str], None] | None = None,
) -> RunLiveResult:
    """Run (or resume) the loop until the window ends, ``duration`` passes or a stop.

    Paper: ``broker_factory`` builds the paper broker (tests pass a crashing one).
    Live: ``live_broker`` (default: ``open_broker`` with the configured credentials) and
    ``clock`` (default: the exchange's server time, waited on in real time).
    ``on_alert`` is told of transient trouble the loop rides out (a locked database)."""
    config, source = load_strategy(home, request.config)
    stage3, _ = load_stage3(home, request.stage3)
    path = home.state_path
    broker = (
        open_live_broker(request.exchange, request.base_url, request.timeout_ms)
        if request.live and live_broker is None
        else live_broker
    )
    if request.live and request.stop_limits and broker is not None:
        refusal = broker.order_type_refusal(OrderType.STOP_LIMIT)
        if refusal is not None:
            raise InputError(f"{broker.name}: {refusal}", where="--stop-limits")
    db = open_state(path)
    try:
        setup = _Setup(request, home, db, path, config, source, stage3, wall_clock, on_alert)
        if request.live:
            clock = clock or ExchangeClock(broker, should_stop)
            return _run_live(setup, broker, clock, should_stop, on_step)
        return _run_paper(setup, should_stop, on_step, broker_factory)
    finally:
        db.close()


@dataclass
class _Setup:
    request: RunLiveRequest
    home: Home
    db: StateDB
    path: Path
    config: Any
    source: ConfigSource
    stage3: Any
    wall_clock: Callable[[], datetime]
    on_retry: Callable[[str], None] | None = None

    @property
    def settings(self) -> dict[str, Any]:
        stage3 = self.stage3
        return {
            "tolerance_usd": stage3.reconciliation_tolerance_usd,
            "drift_alert_usd": stage3.alerts.reconciliation_drift_usd,
            "max_impact_bps": stage3.risk.max_impact_bps,
            "margin_warning_pct": stage3.alerts.margin_warning_pct,
            "margin_critical_pct": stage3.alerts.margin_critical_pct,
        }

    def context(
        self, run_id: str, params: dict[str, Any], broker: Any, **fields: Any
    ) -> live_step.LiveContext:
        return live_step.LiveContext(
            db=self.db,
            broker=broker,
            run_id=run_id,
            limits=_policy_limits(self.stage3, position_limits=params["position_limits"]),
            alerts=self.stage3.alerts,
            tolerance_usd=Decimal(repr(self.stage3.reconciliation_tolerance_usd)),
            initial_equity=Decimal(params["initial_equity"]),
            stop_limits=params["stop_limits"],
            book=load_run_book(self.db, run_id),
            on_retry=self.on_retry,
            **self.risk_fields(run_id, params, fields["exchange"]),
            **fields,
        )

    def risk_fields(self, run_id: str, params: dict[str, Any], exchange: str) -> dict[str, Any]:
        """Breakers (a run started before they existed has none), the active preset's
        caps and the cost model, all from risk_presets.yaml."""
        from stagectl.domain.breakers import BreakerSettings
        from stagectl.domain.pretrade_costs import CostSettings
        from stagectl.domain.sizing import SizingLimits
        from stagectl.services.live.breakers import BreakerState

        presets, _ = load_risk_presets(self.home)
        breakers = None
        if params.get("breakers", False):
            settings = BreakerSettings.from_config(
                presets.circuit_breakers,
                daily_drawdown_stop_pct=presets.active_preset.daily_loss_stop_pct,
            )
            breakers = BreakerState.load(self.db, run_id, settings, presets.active)
        return {
            "breakers": breakers,
            "sizing": SizingLimits.from_config(presets),
            "sizing_preset": presets.active,
            "costs": CostSettings.from_config(
                presets, "binance" if exchange == "paper" else exchange
            ),
        }

    def control(
        self, should_stop: Callable[[], bool], on_step: StepCallback | None, mode: str
    ) -> Any:
        return live_loop.LoopControl(
            should_stop=should_stop,
            on_step=on_step,
            settings=self.settings,
            artifacts_interval_s=self.request.artifacts_interval_s,
            duration=self.request.duration,
            speed=self.request.speed,
            guard=self.loop_guard(mode),
            on_alert=self.on_retry,
        )

    def loop_guard(self, mode: str) -> LoopGuard | None:
        """The in-loop risk guard of the strategy config's ``guard`` section; its config
        is loaded now, so a bad one stops the run before its first bar (exit 2)."""
        settings = self.config.guard
        if not (settings.enabled and self.request.guard):
            return None
        beside = self.source.path.parent / settings.config
        in_home = self.home.config_dir / settings.config
        path = beside if beside.is_file() else in_home if in_home.is_file() else None
        guard_config, _ = load_risk_guard(self.home, path)
        return LoopGuard(
            home=self.home,
            config=path,
            settings=guard_config,
            every=timedelta(minutes=settings.every_minutes),
            env=None if mode == "live" else {},
        )

    def announce(self, ctx: live_step.LiveContext) -> None:
        """Tell the trading state and the open risk directives the run starts under."""
        if self.on_retry is None:
            return
        for line in standing_lines(self.db, ctx.mode, ctx.run_id, self.wall_clock()):
            self.on_retry(line)

    def finish(self, ctx: live_step.LiveContext, result: RunLiveResult, status: str) -> None:
        result.status = status
        ended = self.wall_clock()
        ctx.write(
            "record the run's end",
            lambda: runs.finish_run(self.db, ctx.run_id, status=status, ended_at=ended),
        )
        write_artifact_files(
            result.artifacts_dir, build_artifacts(self.db, ctx.run_id, self.settings)
        )
        result.equity = float(ctx.broker.equity())
        result.positions = {p.symbol: str(p.qty) for p in ctx.broker.positions()}
        result.trading_state = flags.get_trading_state(self.db, ctx.mode).state.value
        result.orders_denied = orders.denied_counts(self.db, ctx.run_id)


def _run_paper(
    setup: _Setup,
    should_stop: Callable[[], bool],
    on_step: StepCallback | None,
    broker_factory: Callable[..., Any] | None,
) -> RunLiveResult:
    request, config, db = setup.request, setup.config, setup.db
    run_id, params, resumed = _open_run(setup, "paper", lambda: _paper_params(request, config))
    feed = ReplayFeed(
        config,
        Path(params["replay_data"]) if params["replay_data"] else None,
        _parse(params["start"]),
        _parse(params["end"]),
    )
    done_until = last_snapshot_ts(db, run_id)
    first = 0 if done_until is None else feed.first_index_at_or_after(done_until)
    factory = broker_factory or _paper_broker
    broker = factory(
        StatePaperStore(db, account=_account(run_id)),
        initial_balance=Decimal(params["initial_equity"]),
        taker_fee_bps=Decimal(repr(config.costs.fee_bps)),
        maker_fee_bps=min(Decimal(repr(config.costs.fee_bps)), MAKER_FEE_BPS),
        slippage_bps=Decimal(repr(config.costs.slippage_bps)),
        start=feed.index[0].to_pydatetime(),
    )
    ctx = setup.context(
        run_id,
        params,
        broker,
        mode="paper",
        exchange="paper",
        account=_account(run_id),
        fills_since=feed.index[0].to_pydatetime(),
    )
    artifacts_dir = setup.home.artifacts_dir / run_id
    result = RunLiveResult(
        run_id, "paper", "running", resumed, setup.path, artifacts_dir, setup.source
    )
    result.notes.extend(feed.info.notes)
    if first >= feed.bars:
        result.notes.append("the run had already processed every bar of its window")
    setup.announce(ctx)
    control = setup.control(should_stop, on_step, "paper")
    status = live_loop.paper_loop(ctx, feed, first, result, control)
    setup.finish(ctx, result, status)
    return result


def _run_live(
    setup: _Setup,
    broker: Any,
    clock: Clock,
    should_stop: Callable[[], bool],
    on_step: StepCallback | None,
) -> RunLiveResult:
    from stagectl.exchange.ccxt_broker import CcxtMarketData

    request, config = setup.request, setup.config
    symbols = [s.symbol for s in config.sleeves]
    run_id, params, resumed = _open_run(
        setup, "live", lambda: live_params(request, config, broker, clock)
    )
    if params.get("exchange", request.exchange) != request.exchange:
        raise InputError(
            f"run {run_id} trades on {params['exchange']}, not {request.exchange}",
            where="--exchange",
        )
    first_bar = datetime.fromisoformat(params["start"])
    feed = ExchangeFeed(config, CcxtMarketData(broker.session), first_bar)
    ctx = setup.context(
        run_id,
        params,
        broker,
        mode="live",
        exchange=request.exchange,
        account=request.exchange,
        fills_since=first_bar,
        qty_steps=qty_steps(broker, symbols),
    )
    artifacts_dir = setup.home.artifacts_dir / run_id
    result = RunLiveResult(
        run_id, "live", "running", resumed, setup.path, artifacts_dir, setup.source
    )
    setup.announce(ctx)
    control = setup.control(should_stop, on_step, "live")
    control.end = _parse(params["end"])
    status = live_loop.live_loop(ctx, feed, clock, result, control)
    setup.finish(ctx, result, status)
    return result


def standing_lines(db: StateDB, mode: Any, run_id: str, now: datetime) -> list[str]:
    """The mode's trading state and the open directives that concern the run, as lines."""
    from stagectl.services.trading.directives import directive_dict

    flag = flags.get_trading_state(db, mode)
    lines = [
        f"{mode} trading state: {flag.state.value}"
        + (f" (set by {flag.source}: {flag.reason})" if flag.state.value != "ACTIVE" else "")
    ]
    for d in directives.open_directives(db, mode=mode, now=now, run_id=run_id):
        shown = directive_dict(d, now)
        lines.append(
            f"directive {d.id} {d.action}{' ' + d.sleeve if d.sleeve else ''} "
            f"x{d.multiplier:g}: {shown['state']} (rule {d.rule or '-'})"
        )
    return lines


def _paper_params(request: RunLiveRequest, config: Any) -> dict[str, Any]:
    params = {
        "replay_data": None if request.replay_data is None else str(request.replay_data),
        "start": None if request.start is None else request.start.isoformat(),
        "end": None if request.end is None else request.end.isoformat(),
        "stop_limits": request.stop_limits,
        "position_limits": request.position_limits,
        "initial_equity": repr(float(config.initial_equity_usd)),
        "breakers": request.breakers,
    }
    if request.start is None:
        end = request.end or data_end(config, request.replay_data)
        params["start"] = (end - DEFAULT_WINDOW).isoformat()
        params["end"] = end.isoformat()
    return params


def _account(run_id: str) -> str:
    """Each paper run is its own paper account."""
    return f"paper:{run_id}"


def _paper_broker(store: Any, **kwargs: Any) -> Any:
    from stagectl.exchange.paper import PaperBroker

    return PaperBroker(store, **kwargs)


def _open_run(
    setup: _Setup, mode: str, new_params: Callable[[], dict[str, Any]]
) -> tuple[str, dict[str, Any], bool]:
    db, request, source = setup.db, setup.request, setup.source
    existing = _resumable(db, request, mode)
    if existing is not None:
        params = _params(db, existing.run_id)
        retry_locked("reopen the run", lambda: reopen_run(db, existing.run_id), setup.on_retry)
        return existing.run_id, params, True
    now = setup.wall_clock()
    run_id = f"{mode}-{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(2)}"
    params = new_params()
    run = runs.Run(
        run_id,
        KIND,
        mode,
        now,
        config_path=str(source.path),
        config_sha256=file_sha256(source.path),
        account=_account(run_id) if mode == "paper" else request.exchange,
    )

    def record_start() -> None:
        with db.transaction():
            runs.start_run(db, run)
            journal.record_event(
                db, Event(ts=now, event_type=RUN_STARTED, run_id=run_id, payload=params)
            )

    retry_locked("record the run's start", record_start, setup.on_retry)
    return run_id, params, False


def _resumable(db: StateDB, request: RunLiveRequest, mode: str) -> runs.Run | None:
    if request.resume is not None:
        found = runs.get_run(db, request.resume)
        if found is None or found.kind != KIND:
            raise InputError(
                f"no run-live run {request.resume!r} in this state database", where="--resume"
            )
        if found.mode != mode:
            raise InputError(f"run {found.run_id} is a {found.mode} run", where="--resume")
        return found
    if request.new_run:
        return None
    for candidate in runs.list_runs(db, kind=KIND, mode=mode, limit=50):
        if candidate.status in ("running", "aborted"):
            return candidate
    return None


def _params(db: StateDB, run_id: str) -> dict[str, Any]:
    started = journal.events(db, run_id=run_id, event_type=RUN_STARTED, limit=1)
    if not started or started[0].payload is None:
        raise InputError(
            f"run {run_id} has no RUN_STARTED record; start a new run", where="--resume"
        )
    return dict(started[0].payload)


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
