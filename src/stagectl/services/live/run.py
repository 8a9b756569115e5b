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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from stagectl.config.home import ConfigSource, Home
from stagectl.config.loader import (
    file_sha256,
    is_stage3_file,
    load_profile_strategy,
    load_risk_guard,
    load_risk_presets,
    load_stage3,
    load_strategy,
)
from stagectl.config.state_url import StateLocation
from stagectl.domain.execution import SliceSettings
from stagectl.domain.order_policy import PolicyLimits, SymbolCap
from stagectl.domain.performance import bar_minutes
from stagectl.domain.types import Event, OrderType
from stagectl.errors import InputError
from stagectl.services.live import loop as live_loop
from stagectl.services.live import step as live_step
from stagectl.services.live.artifacts import (
    build_artifacts,
    run_artifacts_dir,
    write_artifact_files,
)
from stagectl.services.live.book import load_run_book
from stagectl.services.live.exchange import (
    Clock,
    ExchangeClock,
    ExchangeFeed,
    live_params,
    open_live_broker,
    qty_steps,
)
from stagectl.services.live.execution import RouterSettings
from stagectl.services.live.feed import ReplayFeed, data_span
from stagectl.services.live.guard import PAPER_DELIVERY, LoopGuard
from stagectl.services.live.lease import RunLease
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
    stop_limits: bool | None = None
    """Protective stop-limits; None: the stage3 profile's ``run.stop_limits``, else off."""
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
    state_path: StateLocation
    artifacts_dir: Path
    config: ConfigSource
    stage3: ConfigSource | None = None
    """The order policy and alerts the run used (stage3.yaml, or the ``-c`` profile)."""
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
    slice_fills: str | None = None
    """What the router's slices fill against: ``1m bars`` (paper, the data has them),
    ``bar`` (paper, at the bar), ``venue`` (live); None: the router is off."""

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "status": self.status,
            "resumed": self.resumed,
            "state": str(self.state_path),
            "artifacts": str(self.artifacts_dir),
            "config": self.config.describe(),
            "stage3": None if self.stage3 is None else self.stage3.describe(),
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
            "slice_fills": self.slice_fills,
            "notes": self.notes,
        }


def live_credentials_source() -> str:
    """Where the exchange credentials come from (never the secrets); exit 2 when none."""
    from stagectl.exchange.credentials import require_credentials

    return require_credentials().source


def resolve_configs(
    request: RunLiveRequest, home: Home
) -> tuple[RunLiveRequest, Any, ConfigSource, Any, ConfigSource]:
    """The request with its defaults filled in, the strategy and the stage3 policy.

    ``-c`` names a strategy file (default ``futures_alt_ensemble.yaml``, policy from
    ``--stage3``) or a stage3 run profile (a stage3.yaml: top-level ``symbols``): the
    profile is then the policy, ``run.strategy`` the strategy, ``duration_h`` the default
    ``--duration`` and ``run.stop_limits`` the default ``--stop-limits``."""
    if request.config is not None and is_stage3_file(request.config):
        stage3, stage3_source = load_stage3(home, request.config)
        if request.stage3 is not None and not _same_file(request.stage3, request.config):
            raise InputError(
                f"-c {request.config} is a stage3 run profile and so the run's order policy "
                "and alerts; drop --stage3 (or pass the same file)",
                where="--stage3",
            )
        config, source = load_profile_strategy(home, stage3, stage3_source)
        duration = request.duration or timedelta(hours=stage3.duration_h)
        stop_limits = request.stop_limits
        if stop_limits is None:
            stop_limits = stage3.run is not None and stage3.run.stop_limits
        resolved = replace(request, duration=duration, stop_limits=stop_limits)
        return resolved, config, source, stage3, stage3_source
    config, source = load_strategy(home, request.config)
    stage3, stage3_source = load_stage3(home, request.stage3)
    resolved = replace(request, stop_limits=bool(request.stop_limits))
    return resolved, config, source, stage3, stage3_source


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.resolve() == other.resolve()
    except OSError:
        return False


def router_settings(stage3: Any) -> RouterSettings | None:
    """The execution router of the stage3 policy's ``execution`` section (None: off)."""
    section = stage3.execution
    if not section.router:
        return None
    return RouterSettings(
        slices=SliceSettings(
            twap_bars=section.twap_bars,
            pov_share=Decimal(repr(section.pov_share)),
            iceberg_clip_usd=Decimal(repr(section.iceberg_clip_usd)),
            min_slice_usd=Decimal(repr(section.min_slice_usd)),
        )
    )


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
    request, config, source, stage3, stage3_source = resolve_configs(request, home)
    path = home.state_path
    broker = (
        open_live_broker(request.exchange, request.base_url, request.timeout_ms)
        if request.live and live_broker is None
        else live_broker
    )
    if request.live and request.stop_limits and broker is not None:
        refusal = broker.order_type_refusal(OrderType.STOP_LIMIT)
        if refusal is not None:
            raise InputError(
                f"{broker.name}: {refusal} (pass --no-stop-limits to trade without them)",
                where="--stop-limits",
            )
    db = open_state(path)
    setup = _Setup(
        request, home, db, path, config, source, stage3, stage3_source, wall_clock, on_alert
    )

    def stop() -> bool:
        """Asked to stop, or the run's lease was taken over by another driver."""
        return should_stop() or (setup.lease is not None and setup.lease.lost)

    try:
        if request.live:
            clock = clock or ExchangeClock(broker, stop)
            return _run_live(setup, broker, clock, stop, on_step)
        return _run_paper(setup, stop, on_step, broker_factory)
    finally:
        try:
            if setup.lease is not None:
                setup.lease.release(db)
        finally:
            db.close()


@dataclass
class _Setup:
    request: RunLiveRequest
    home: Home
    db: StateDB
    path: StateLocation
    config: Any
    source: ConfigSource
    stage3: Any
    stage3_source: ConfigSource
    wall_clock: Callable[[], datetime]
    on_retry: Callable[[str], None] | None = None
    lease: RunLease | None = None
    """This process's lease on the run (services.live.lease), taken when the run opens."""

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
            router=router_settings(self.stage3),
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
        return LoopGuard(
            home=self.home,
            config=path,
            settings=load_risk_guard(self.home, path),
            every=timedelta(minutes=settings.every_minutes),
            env=None if mode == "live" else {},
            delivery=None if mode == "live" else PAPER_DELIVERY,
        )

    def artifacts_dir(self, run_id: str, params: dict[str, Any]) -> Path:
        """Where the run writes its artifacts, as recorded when it started (below stage3
        ``artifacts.dir``); a run started before runs recorded it keeps HOME/artifacts/RUN."""
        recorded = params.get("artifacts_dir")
        return Path(recorded) if recorded else self.home.artifacts_dir / run_id

    def announce(self, ctx: live_step.LiveContext) -> None:
        """Tell the trading state and the open risk directives the run starts under."""
        if self.on_retry is None:
            return
        for line in standing_lines(self.db, ctx.mode, ctx.run_id, self.wall_clock()):
            self.on_retry(line)

    def finish(self, ctx: live_step.LiveContext, result: RunLiveResult, status: str) -> None:
        if self.lease is not None and self.lease.lost:
            raise self.lease.lost_error()
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
    checked: list[ReplayFeed] = []

    def new_params() -> dict[str, Any]:
        params = _paper_params(request, config)
        # The window is loaded before the run is recorded: a window the data cannot fill is
        # refused without leaving a "running" run that the next run-live would resume.
        checked.append(_replay_feed(config, params))
        return params

    run_id, params, resumed = _open_run(setup, "paper", new_params)
    feed = checked[0] if checked else _replay_feed(config, params)
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
    result = RunLiveResult(
        run_id,
        "paper",
        "running",
        resumed,
        setup.path,
        setup.artifacts_dir(run_id, params),
        setup.source,
        setup.stage3_source,
    )
    result.notes.extend(feed.info.notes)
    window_end = _parse(params["end"])
    if window_end is not None and window_end - feed.index[-1].to_pydatetime() >= feed.step:
        result.notes.append(
            f"the data ends at {_iso(feed.index[-1].to_pydatetime())}, "
            f"before the window's end {_iso(window_end)}"
        )
    if first >= feed.bars:
        result.notes.append("the run had already processed every bar of its window")
    if ctx.router is not None:
        result.slice_fills = slice_fills(feed)
    setup.announce(ctx)
    control = setup.control(should_stop, on_step, "paper")
    status = live_loop.paper_loop(ctx, feed, first, result, control)
    setup.finish(ctx, result, status)
    return result


def slice_fills(feed: ReplayFeed) -> str:
    """``1m bars`` when every sleeve's data has 1m bars, ``bar`` when none has, else
    which sleeve fills against which."""
    symbols = sorted(feed.sleeve_symbols)
    fine = [s for s in symbols if s in feed.fine_symbols]
    if len(fine) == len(symbols):
        return "1m bars"
    if not fine:
        return "bar"
    return "; ".join(f"{s}: {'1m bars' if s in fine else 'bar'}" for s in symbols)


def _replay_feed(config: Any, params: dict[str, Any]) -> ReplayFeed:
    return ReplayFeed(
        config,
        Path(params["replay_data"]) if params["replay_data"] else None,
        _parse(params["start"]),
        _parse(params["end"]),
    )


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
    result = RunLiveResult(
        run_id,
        "live",
        "running",
        resumed,
        setup.path,
        setup.artifacts_dir(run_id, params),
        setup.source,
        setup.stage3_source,
    )
    result.slice_fills = None if ctx.router is None else "venue"
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
    """A new paper run's parameters; its window is always concrete (``start``/``end``).

    Without ``--start`` the window ends at ``--end`` (default: the data's last common bar)
    and spans ``--duration`` (default: 30 days): exactly ``duration / bar`` bars, refused
    when the data does not reach back that far. With ``--start`` and ``--duration`` it
    ends ``duration`` after the start (a note says when the data ends sooner)."""
    params: dict[str, Any] = {
        "replay_data": None if request.replay_data is None else str(request.replay_data),
        "start": None if request.start is None else request.start.isoformat(),
        "end": None if request.end is None else request.end.isoformat(),
        "stop_limits": bool(request.stop_limits),
        "position_limits": request.position_limits,
        "initial_equity": repr(float(config.initial_equity_usd)),
        "breakers": request.breakers,
    }
    step = timedelta(minutes=bar_minutes(config.timeframe))
    if request.start is None:
        first, last = data_span(config, request.replay_data)
        end = request.end or last
        if request.duration is None:
            start = end - DEFAULT_WINDOW
        else:
            start = end - request.duration + step
            if start < first:
                held = (end - first + step) / timedelta(days=1)
                raise InputError(
                    f"{_span(request.duration)} of {config.timeframe} bars up to {_iso(end)} "
                    f"would start at {_iso(start)}, but the data "
                    f"({'--replay-data' if request.replay_data else 'the bundled sample'}) "
                    f"begins at {_iso(first)}: it holds {held:.1f} days up to there; ask for "
                    "at most that, or give --replay-data with more history",
                    where="--duration",
                )
        params["start"], params["end"] = start.isoformat(), end.isoformat()
    elif request.end is None and request.duration is not None:
        params["end"] = (request.start + request.duration - step).isoformat()
    return params


def _span(length: timedelta) -> str:
    """A duration as the CLI writes it: ``60d``, ``36h`` or ``90m``."""
    minutes = int(length.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


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
        setup.lease = retry_locked(
            "take the run's lease",
            lambda: RunLease.take(db, setup.path, existing.run_id, setup.wall_clock),
            setup.on_retry,
        )
        retry_locked("reopen the run", lambda: reopen_run(db, existing.run_id), setup.on_retry)
        return existing.run_id, params, True
    now = setup.wall_clock()
    run_id = f"{mode}-{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(2)}"
    params = new_params()
    params["artifacts_dir"] = str(run_artifacts_dir(setup.home, setup.stage3, run_id))
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
    setup.lease = retry_locked(
        "take the run's lease",
        lambda: RunLease.take(db, setup.path, run_id, setup.wall_clock),
        setup.on_retry,
    )
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
