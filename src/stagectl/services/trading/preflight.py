"""``stagectl preflight``: seed 002's pre-flight checklist as PASS/FAIL/SKIP checks.

Nothing is changed: no directory is created, no order is sent, the state database is
opened without migrating (its write lock is taken and released to prove it writable).

Exchange filters (minimum order size, quantity step, minimum notional, fees) come from
the exchange's loaded markets with ``--exchange`` (not ``--offline``), else from
:data:`BINANCE_USDM_SNAPSHOT`, a packaged copy of Binance USD-M ``exchangeInfo``
filters for the four Stage 3 symbols; each check says which source it used.

Entry: ``run(PreflightRequest, *, home, clock) -> PreflightResult``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from stagectl.config.home import ConfigSource, Home
from stagectl.config.state_url import StateLocation, state_exists
from stagectl.domain.types import KeyPermissions
from stagectl.errors import StagectlError

Status = Literal["PASS", "FAIL", "SKIP"]
MAX_CLOCK_SKEW_S = 1.0
SNAPSHOT_SOURCE = "packaged Binance USD-M filter snapshot (2024; verify online with --exchange)"

BINANCE_USDM_SNAPSHOT: dict[str, dict[str, Decimal]] = {
    # LOT_SIZE stepSize/minQty and MIN_NOTIONAL of Binance USD-M perpetuals.
    "BTCUSDT": {
        "step": Decimal("0.001"),
        "min_qty": Decimal("0.001"),
        "min_notional": Decimal(100),
    },
    "ETHUSDT": {"step": Decimal("0.001"), "min_qty": Decimal("0.001"), "min_notional": Decimal(20)},
    "SOLUSDT": {"step": Decimal("1"), "min_qty": Decimal("1"), "min_notional": Decimal(5)},
    "XRPUSDT": {"step": Decimal("0.1"), "min_qty": Decimal("0.1"), "min_notional": Decimal(5)},
}
SNAPSHOT_TAKER_FEE_BPS = Decimal(5)  # Binance USD-M regular (VIP 0) tier: taker 0.05 %
SNAPSHOT_MAKER_FEE_BPS = Decimal(2)  # maker 0.02 %


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "reason": self.reason}


@dataclass(frozen=True)
class PreflightRequest:
    config: Path | None = None
    exchange: str | None = None
    base_url: str | None = None
    offline: bool = False
    timeout_ms: int = 10_000


@dataclass
class PreflightResult:
    config: ConfigSource
    mode: str
    state_db: StateLocation
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.status != "FAIL" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(c.status == s for c in self.checks) for s in ("PASS", "FAIL", "SKIP")}
        return {
            "config": self.config.describe(),
            "mode": self.mode,
            "state_db": str(self.state_db),
            "passed": self.passed,
            "summary": counts,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass
class _Venue:
    """What the exchange told us (None: offline or unreachable). ``permissions`` is the
    key's rights, or why they are unknown (a string)."""

    markets: dict[str, dict[str, Any]] | None = None
    taker_fee_bps: Decimal | None = None
    error: str | None = None
    permissions: KeyPermissions | str | None = None


def run(
    request: PreflightRequest,
    *,
    home: Home,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> PreflightResult:
    """Run every check; a bad ``-c`` file raises ConfigError (exit 2). ``clock`` is the
    local clock the exchange's server time is compared with."""
    from stagectl.config.loader import load_stage3

    stage3, source = load_stage3(home, request.config)
    paper = request.exchange is None
    path = home.state_path
    result = PreflightResult(source, "paper" if paper else request.exchange or "", path)
    add = result.checks.append
    add(Check("config valid", "PASS", f"{source.describe()}: {len(stage3.symbols)} symbols"))
    add(_thresholds(home))
    add(_state_db(path, paper))
    add(_artifact_dirs(home, stage3))
    limits = _policy_limits(stage3)
    add(_tif_policy(limits))
    add(_sized_down(stage3, limits))
    add(_margin_windows(stage3))
    add(_credentials(request, paper))
    reach, venue = _exchange(request, stage3, clock)
    add(reach)
    add(_key_permissions(request, venue))
    add(_position_limits(stage3, venue))
    add(_fee_tier(home, stage3, source, venue))
    add(_reconciliation(path, stage3, "paper" if paper else "live"))
    return result


# --- checks ---------------------------------------------------------------------------


def _thresholds(home: Home) -> Check:
    from stagectl.services.stage6 import verify_thresholds

    name = "thresholds verified"
    try:
        audit = verify_thresholds.run(verify_thresholds.VerifyThresholdsRequest(), home=home)
    except StagectlError as error:
        return Check(name, "FAIL", str(error))
    failed = [c for c in audit.checks if not c.passed]
    if failed:
        names = ", ".join(c.id for c in failed[:5])
        return Check(name, "FAIL", f"{len(failed)} governed values differ: {names}")
    return Check(name, "PASS", f"{len(audit.checks)} governed values match the baseline")


def _state_db(path: StateLocation, paper: bool) -> Check:
    from stagectl.state.db import open_state

    name = "state DB writable, schema current"
    if not state_exists(path):
        if paper:
            return Check(
                name, "SKIP", f"no state database yet at {path} (init or run-live creates it)"
            )
        return Check(name, "FAIL", f"no state database at {path}; run `stagectl init`")
    try:
        with open_state(path, migrate=False) as db:
            pending = db.pending_migrations()
            with db.transaction():
                pass
            version = db.schema_version()
    except StagectlError as error:
        return Check(name, "FAIL", str(error))
    if isinstance(path, Path) and not os.access(path, os.W_OK):
        return Check(name, "FAIL", f"{path} is not writable by this user")
    if pending:
        return Check(name, "FAIL", f"{len(pending)} pending migrations: run `stagectl init`")
    return Check(name, "PASS", f"{path}: schema version {version}, write lock taken and released")


def _artifact_dirs(home: Home, stage3: Any) -> Check:
    name = "artifact directories"
    wanted = [home.root / Path(stage3.artifacts.dir).expanduser(), home.logs_dir, home.reports_dir]
    missing = [d for d in wanted if not d.is_dir()]
    if missing:
        shown = " ".join(str(d) for d in missing)
        return Check(
            name,
            "FAIL",
            f"missing: {shown}; run `stagectl init` (it creates them, keeping your "
            f"configs), or `mkdir -p {shown}`",
        )
    blocked = [d for d in wanted if not os.access(d, os.W_OK | os.X_OK)]
    if blocked:
        return Check(name, "FAIL", "not writable: " + ", ".join(str(d) for d in blocked))
    return Check(name, "PASS", ", ".join(str(d.relative_to(home.root)) for d in wanted))


def _policy_limits(stage3: Any) -> Any:
    from stagectl.domain.order_policy import PolicyLimits, SymbolCap

    return PolicyLimits(
        max_impact_bps=Decimal(repr(stage3.risk.max_impact_bps)),
        leverage_limit=Decimal(repr(stage3.risk.leverage_limit)),
        stop_distance_pct=Decimal(repr(stage3.risk.stop_distance_pct)),
        allowed={k: tuple(v) for k, v in stage3.orders.allowed.items()},
        gated={k: tuple(v) for k, v in stage3.orders.gated.items()},
        symbol_caps={
            s: SymbolCap(Decimal(repr(v.max_size)), Decimal(repr(v.max_notional_usd)))
            for s, v in stage3.symbols.items()
        },
    )


def _policy_on(order: Any, limits: Any, *, price: Decimal, volume: Decimal) -> Any:
    from stagectl.domain.order_policy import MarketContext, apply_policy

    market = MarketContext(
        price=price, bar_dollar_volume=volume, position_qty=Decimal(0), equity=Decimal(10**9)
    )
    return apply_policy(order, market, limits)


def _probe_order(
    symbol: str,
    kind: Any,
    qty: Decimal,
    tif: Any,
    *,
    price: Decimal,
    stop_price: Decimal | None = None,
) -> Any:
    """A buy order the checks put through the policy (never sent)."""
    from datetime import UTC, datetime

    from stagectl.domain.types import Order, Side

    return Order(
        client_order_id="preflight-probe",
        symbol=symbol,
        side=Side.BUY,
        type=kind,
        qty=qty,
        created_at=datetime.now(UTC),
        price=price,
        stop_price=stop_price,
        time_in_force=tif,
    )


def _tif_policy(limits: Any) -> Check:
    """GTD must be denied TIF_GATED; LIMIT GTC/IOC and STOP_LIMIT GTC must pass."""
    from stagectl.domain.guards import Denial
    from stagectl.domain.order_policy import TIF_GATED
    from stagectl.domain.types import OrderType, TimeInForce

    name = "TIF policy"
    symbol = next(iter(limits.symbol_caps), "BTCUSDT")
    price, qty = Decimal(100), Decimal("0.001")
    cases = [
        (OrderType.LIMIT, TimeInForce.GTD, False),
        (OrderType.LIMIT, TimeInForce.GTC, True),
        (OrderType.LIMIT, TimeInForce.IOC, True),
        (OrderType.STOP_LIMIT, TimeInForce.GTC, True),
    ]
    wrong = []
    for kind, tif, accepted in cases:
        order = _probe_order(
            symbol,
            kind,
            qty,
            tif,
            price=price,
            stop_price=price if kind == OrderType.STOP_LIMIT else None,
        )
        outcome, _ = _policy_on(order, limits, price=price, volume=Decimal(10**12))
        denied = isinstance(outcome, Denial)
        if accepted == denied or (not accepted and outcome.code != TIF_GATED):
            wrong.append(f"{kind.name} {tif} {'denied' if denied else 'accepted'}")
    if wrong:
        return Check(name, "FAIL", "; ".join(wrong))
    return Check(name, "PASS", "LIMIT GTD gated; LIMIT GTC/IOC and STOP_LIMIT GTC accepted")


def _sized_down(stage3: Any, limits: Any) -> Check:
    """A buy of 10x max_size is cut to max_size (SIZED_DOWN, POSITION_LIMIT)."""
    from stagectl.domain.guards import Denial
    from stagectl.domain.order_policy import POSITION_LIMIT, SIZED_DOWN
    from stagectl.domain.types import OrderType, TimeInForce

    name = "SIZED_DOWN generation"
    symbol, caps = next(iter(stage3.symbols.items()))
    max_size = Decimal(repr(caps.max_size))
    price = Decimal(repr(caps.max_notional_usd)) / max_size / 2  # max_size is the binding cap
    order = _probe_order(symbol, OrderType.LIMIT, max_size * 10, TimeInForce.GTC, price=price)
    outcome, events = _policy_on(order, limits, price=price, volume=Decimal(10**12))
    sized = [e for e in events if e.event_type == SIZED_DOWN and e.code == POSITION_LIMIT]
    if isinstance(outcome, Denial) or not sized or outcome.qty != max_size:
        return Check(name, "FAIL", f"{symbol} {max_size * 10} was not sized down to {max_size}")
    return Check(
        name,
        "PASS",
        f"{symbol} buy {_num(max_size * 10)} -> {_num(outcome.qty)} (SIZED_DOWN POSITION_LIMIT)",
    )


def _margin_window(utilisation_pct: float, warning_pct: float, critical_pct: float) -> str:
    """Seed 002 alert windows: above ``critical_pct`` CRITICAL, above ``warning_pct``
    WARNING, else NORMAL (strictly above: exactly 20 % is still NORMAL)."""
    if utilisation_pct > critical_pct:
        return "CRITICAL"
    if utilisation_pct > warning_pct:
        return "WARNING"
    return "NORMAL"


def _margin_windows(stage3: Any) -> Check:
    warning, critical = stage3.alerts.margin_warning_pct, stage3.alerts.margin_critical_pct
    cases = [
        (0.0, "NORMAL"),
        (warning, "NORMAL"),
        (warning + 0.01, "WARNING"),
        (critical, "WARNING"),
        (critical + 0.01, "CRITICAL"),
        (100.0, "CRITICAL"),
    ]
    wrong = [
        f"{u} % -> {_margin_window(u, warning, critical)} (expected {want})"
        for u, want in cases
        if _margin_window(u, warning, critical) != want
    ]
    name = "margin window detection"
    if wrong:
        return Check(name, "FAIL", "; ".join(wrong))
    return Check(
        name,
        "PASS",
        f"{len(cases)} synthetic utilisations: WARNING > {warning} %, CRITICAL > {critical} %",
    )


def _credentials(request: PreflightRequest, paper: bool) -> Check:
    from stagectl.exchange.credentials import KEY_ENV, KEY_FILE_ENV, SECRET_ENV, load_credentials

    name = "credentials present"
    if paper or request.offline:
        return Check(name, "SKIP", "paper" if paper else "--offline")
    try:
        credentials = load_credentials()
    except StagectlError as error:
        return Check(name, "FAIL", str(error))
    if credentials is None:
        return Check(name, "FAIL", f"set {KEY_ENV} and {SECRET_ENV}, or {KEY_FILE_ENV}")
    return Check(name, "PASS", f"from {credentials.source} (values not shown)")


@dataclass(frozen=True)
class ExchangeProbe:
    """What one round trip to the exchange told: its markets for the symbols and the clock
    skew (the server's time against the midpoint of the local send and receive times),
    or the error that stopped it."""

    markets: dict[str, dict[str, Any]] | None = None
    skew_s: float | None = None
    error: str | None = None
    broker: Any = None
    credentials: Any = None


def probe_exchange(
    exchange: str,
    symbols: list[str],
    clock: Callable[[], datetime],
    *,
    base_url: str | None = None,
    timeout_ms: int = 10_000,
) -> ExchangeProbe:
    """Load the symbols' markets and measure the clock skew (preflight and health)."""
    from stagectl.exchange.ccxt_broker import open_broker
    from stagectl.exchange.credentials import load_credentials
    from stagectl.exchange.retry import RetryPolicy

    try:
        credentials = load_credentials()
    except StagectlError:
        credentials = None  # public calls only; the credentials check reports the problem
    try:
        broker = open_broker(
            exchange,
            credentials=credentials,
            base_url=base_url,
            timeout_ms=timeout_ms,
            policy=RetryPolicy(max_attempts=2, base_backoff_s=0.2, max_backoff_s=1.0),
        )
        markets = {s: broker.market(s) for s in symbols}
        sent = clock()
        server = broker.server_time()
        received = clock()
    except StagectlError as error:
        return ExchangeProbe(error=str(error))
    local = sent + (received - sent) / 2
    skew_s = abs((server - local).total_seconds())
    return ExchangeProbe(markets, skew_s, broker=broker, credentials=credentials)


def _exchange(
    request: PreflightRequest, stage3: Any, clock: Callable[[], datetime]
) -> tuple[Check, _Venue]:
    name = "exchange reachable, clock skew"
    if request.exchange is None:
        return Check(name, "SKIP", "paper: no exchange (pass --exchange ID)"), _Venue()
    if request.offline:
        return Check(name, "SKIP", "--offline"), _Venue()
    probe = probe_exchange(
        request.exchange,
        list(stage3.symbols),
        clock,
        base_url=request.base_url,
        timeout_ms=request.timeout_ms,
    )
    if probe.markets is None or probe.skew_s is None:
        return Check(name, "FAIL", str(probe.error)), _Venue(error=probe.error)
    markets, skew_s = probe.markets, probe.skew_s
    taker = next(iter(markets.values())).get("taker")
    venue = _Venue(
        markets=markets,
        taker_fee_bps=None if taker is None else Decimal(repr(taker)) * 10_000,
        permissions=_permissions_of(probe.broker, probe.credentials),
    )
    if skew_s >= MAX_CLOCK_SKEW_S:
        return Check(
            name, "FAIL", f"clock skew {skew_s:.3f} s (limit {MAX_CLOCK_SKEW_S} s): sync NTP"
        ), venue
    return Check(
        name, "PASS", f"{request.exchange}: {len(markets)} markets loaded, skew {skew_s:.3f} s"
    ), venue


def _permissions_of(broker: Any, credentials: Any) -> KeyPermissions | str:
    if credentials is None:
        return "no key to ask about"
    try:
        permissions: KeyPermissions | None = broker.key_permissions()
    except StagectlError as error:
        return f"cannot read them: {error}"
    return permissions if permissions is not None else "the exchange does not report them"


def _key_permissions(request: PreflightRequest, venue: _Venue) -> Check:
    """The live key may trade, must not withdraw, and must be bound to an IP allowlist
    (seed 001, security)."""
    name = "key permissions"
    if request.exchange is None:
        return Check(name, "SKIP", "paper: no key")
    if request.offline:
        return Check(name, "SKIP", "--offline")
    permissions = venue.permissions
    if isinstance(permissions, str) or permissions is None:
        reason = permissions or venue.error or "exchange unreachable"
        status: Status = "FAIL" if reason.startswith("cannot read") else "SKIP"
        return Check(name, status, reason)
    problems = [
        text
        for bad, text in (
            (permissions.can_withdraw, "withdrawals are enabled: disable them on this key"),
            (not permissions.ip_restricted, "no IP allowlist: restrict the key to this host"),
            (not permissions.can_trade, "the key cannot trade"),
        )
        if bad
    ]
    if problems:
        return Check(name, "FAIL", "; ".join(problems))
    return Check(name, "PASS", permissions.describe())


def _filters(symbol: str, venue: _Venue) -> tuple[dict[str, Decimal] | None, str]:
    if venue.markets is not None:
        market = venue.markets[symbol]
        limits, precision = market.get("limits") or {}, market.get("precision") or {}
        amount, cost = limits.get("amount") or {}, limits.get("cost") or {}
        step = precision.get("amount")
        return {
            "step": Decimal(repr(step)) if step is not None else Decimal(0),
            "min_qty": Decimal(repr(amount.get("min") or 0)),
            "min_notional": Decimal(repr(cost.get("min") or 0)),
        }, "exchange markets"
    return BINANCE_USDM_SNAPSHOT.get(symbol), SNAPSHOT_SOURCE


def _position_limits(stage3: Any, venue: _Venue) -> Check:
    """max_size and the stop-limit test sizes: at least the minimum quantity and a
    whole number of steps; max_notional at least the minimum notional."""
    name = "position limits vs exchange filters"
    if venue.error is not None:
        return Check(name, "SKIP", "exchange unreachable")
    problems, source = [], SNAPSHOT_SOURCE
    for symbol, caps in stage3.symbols.items():
        filters, source = _filters(symbol, venue)
        if filters is None:
            problems.append(f"{symbol}: no filters known")
            continue
        sizes = {"max_size": Decimal(repr(caps.max_size))}
        test_size = stage3.stop_limit_tests.sizes.get(symbol)
        if test_size is not None:
            sizes["stop test size"] = Decimal(repr(test_size))
        for label, size in sizes.items():
            if size < filters["min_qty"]:
                problems.append(f"{symbol} {label} {size} < min qty {filters['min_qty']}")
            elif filters["step"] and size % filters["step"] != 0:
                problems.append(f"{symbol} {label} {size} is not a multiple of {filters['step']}")
        notional = Decimal(repr(caps.max_notional_usd))
        if notional < filters["min_notional"]:
            problems.append(f"{symbol} max_notional {notional} < min {filters['min_notional']}")
    if problems:
        return Check(name, "FAIL", "; ".join(problems) + f" ({source})")
    return Check(name, "PASS", f"{len(stage3.symbols)} symbols within filters ({source})")


def _fee_tier(home: Home, stage3: Any, stage3_source: ConfigSource, venue: _Venue) -> Check:
    """The cost model's fee must not be below the venue's taker fee. The strategy is the
    one the stage3 profile runs (``run.strategy``), else the home's default strategy."""
    from stagectl.config.loader import load_profile_strategy, load_strategy

    name = "fee tier known"
    try:
        if stage3.run is not None:
            strategy, _ = load_profile_strategy(home, stage3, stage3_source)
        else:
            strategy, _ = load_strategy(home)
    except StagectlError as error:
        return Check(name, "FAIL", str(error))
    assumed = Decimal(repr(strategy.costs.fee_bps))
    taker, source = venue.taker_fee_bps, "exchange markets"
    if taker is None:
        taker, source = SNAPSHOT_TAKER_FEE_BPS, "Binance USD-M regular tier (snapshot)"
    if assumed < taker:
        return Check(name, "FAIL", f"cost model fee {assumed} bps < taker {taker} bps ({source})")
    return Check(name, "PASS", f"cost model fee {assumed} bps >= taker {taker} bps ({source})")


def _reconciliation(path: StateLocation, stage3: Any, mode: str) -> Check:
    """Equity = initial + realized + unrealized - fees - funding on the latest
    reconciliation record of the latest run-live run of ``mode``, within the tolerance."""
    from stagectl.state import journal, runs
    from stagectl.state.db import open_state

    name = "reconciliation identity"
    tolerance = stage3.reconciliation_tolerance_usd
    if not state_exists(path):
        return Check(name, "SKIP", "no state database")
    try:
        with open_state(path, migrate=False) as db:
            latest = runs.list_runs(db, kind="run-live", mode=mode, limit=1)
            if not latest:
                return Check(name, "SKIP", f"no {mode} run-live run in the state database yet")
            records = journal.events(db, run_id=latest[0].run_id, event_type="RECONCILIATION")
    except StagectlError as error:
        return Check(name, "FAIL", str(error))
    except Exception as error:  # an older schema without these tables
        return Check(name, "SKIP", f"cannot read runs: {type(error).__name__}")
    if not records or not records[-1].payload:
        return Check(name, "SKIP", f"run {latest[0].run_id} has no reconciliation yet")
    p = records[-1].payload
    try:
        ledger = (
            Decimal(repr(p["initial"]))
            + Decimal(repr(p["realized"]))
            + Decimal(repr(p["unrealized"]))
            - Decimal(repr(p["fees"]))
            - Decimal(repr(p["funding"]))
        )
        broker = Decimal(str(p["equity_broker"]))
    except (KeyError, ArithmeticError, ValueError) as error:
        return Check(name, "FAIL", f"reconciliation record unreadable ({error})")
    drift = broker - ledger
    detail = (
        f"run {latest[0].run_id}: equity {broker:.6f} vs ledger {ledger:.6f}, drift {drift:.6f}"
    )
    if abs(drift) > Decimal(repr(tolerance)):
        return Check(name, "FAIL", f"{detail} USD > {tolerance}")
    return Check(name, "PASS", f"{detail} USD within {tolerance}")


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")
