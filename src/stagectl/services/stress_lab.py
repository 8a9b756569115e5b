"""stress-lab: threshold verification first, then every scenario against the thresholds.

Order (seed 000, Stress Lab decision 3): ``verify_thresholds.run`` audits core.yaml
against the approved baseline in-process; when it fails the run stops and nothing
is published. Otherwise Market Intel is computed at ``now`` (services.market_intel),
each hypothetical scenario of config/stress_scenarios.yaml shocks the current
metrics, each historical scenario replays Market Intel at the end of a worst move
found in the data, and every scenario is checked on the aggregate row against
core.yaml's thresholds (the blackout scenario with its overrides) and applied to the
positions. The maths is G's (``stagectl.domain.stress``); this module only wires it.

A ``baseline`` row, the unstressed Market Intel aggregate at ``now`` checked against the
base thresholds, comes first, and every scenario breach carries a ``cause``
(:func:`breach_cause`): ``baseline`` when the live market already breaches that limit at
least as badly, ``scenario`` when the shock (or the replayed window) caused or worsened it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagectl.config.home import Home
from stagectl.config.loader import file_sha256, load_core
from stagectl.errors import ConfigError, InputError
from stagectl.services import market_intel, verify_thresholds
from stagectl.services.market_intel import finite
from stagectl.services.stress_positions import (
    PositionInput,
    load_positions_file,
    positions_from_state,
)

if TYPE_CHECKING:
    from stagectl.config.core import CoreConfig
    from stagectl.config.stress_scenarios import StressScenariosConfig
    from stagectl.domain.market_intel import MarketIntelSnapshot, SymbolMarketData
    from stagectl.domain.stress import Scenario, StressThresholds

KIND = "stress-lab"
BASELINE = "baseline"  # the name and kind of the unstressed row; reserved as a scenario name
# body and verdict key of that row ("baseline" there is the approved-thresholds file)
BASELINE_KEY = "market_baseline"


@dataclass(frozen=True)
class StressRequest:
    config: Path | None = None
    scenarios_file: Path | None = None
    data_dir: Path | None = None
    now: datetime | None = None
    positions_file: Path | None = None
    scenario_names: tuple[str, ...] = ()
    equity_usd: float | None = None
    compare: Path | None = None


@dataclass(frozen=True)
class StressLabResult:
    verification: verify_thresholds.VerifyThresholdsResult
    body: dict[str, Any] = field(default_factory=dict)
    inputs: list[Path] = field(default_factory=list)
    signed_section: str = "verdict"

    @property
    def blocked(self) -> bool:
        return not self.verification.passed

    @property
    def breached(self) -> bool:
        return bool(self.body) and self.body["verdict"]["status"] == "breach"

    def blocked_document(self) -> dict[str, Any]:
        """Why nothing was published: the failed verification checks."""
        failed = [c.to_dict() for c in self.verification.checks if not c.passed]
        return {
            "kind": KIND,
            "status": "blocked",
            "published": False,
            "reason": (
                f"threshold verification failed ({len(failed)} of "
                f"{len(self.verification.checks)} checks): core.yaml differs from the "
                "approved baseline, so no Stress Lab report is published"
            ),
            "failed_checks": failed,
            "config": {
                "path": str(self.verification.config.path),
                "sha256": self.verification.config_sha256,
            },
            "baseline": {
                "path": str(self.verification.baseline.path),
                "sha256": self.verification.baseline_sha256,
            },
        }


@dataclass(frozen=True)
class _Prepared:
    """One scenario ready to evaluate.

    ``snapshots``/``aggregate`` are the Market Intel rows the scenario's shocks apply
    to (now for hypothetical scenarios, the window's end for historical ones);
    ``market`` holds, per symbol, the scenario applied to the *current* snapshot to
    get the stressed spread and liquidity for the liquidation cost.
    """

    name: str
    kind: str
    description: str
    scenario: Scenario
    snapshots: dict[str, MarketIntelSnapshot]
    aggregate: MarketIntelSnapshot
    market: dict[str, Scenario]
    window: dict[str, Any] | None = None


def run(home: Home, request: StressRequest) -> StressLabResult:
    """Verify, then run the scenarios; a blocked result carries only the verification."""
    from stagectl.config.stress_scenarios import load_stress_scenarios

    verification = verify_thresholds.run(home, config=request.config)
    if not verification.passed:
        return StressLabResult(verification)
    core, _ = load_core(home, request.config)
    scenarios_cfg, scenarios_source = load_stress_scenarios(home, request.scenarios_file)
    _check_governed_scenarios(core, scenarios_cfg, scenarios_source.path)
    symbols = market_intel.select_symbols(core, request.data_dir)
    names = _select(request.scenario_names, scenarios_cfg, symbols)
    positions = _positions(home, request.positions_file, symbols)
    market = market_intel.load_market(symbols, request.data_dir)
    now = request.now if request.now is not None else market.default_now()
    intel = market_intel.compute(market, now, core)
    current = {s.symbol: s for s in intel.snapshots}
    prepared = [
        *_hypothetical(names, scenarios_cfg, core, current, intel.aggregate),
        *_historical(names, scenarios_cfg, core, market, now, current),
    ]
    thresholds = _thresholds(core)
    unstressed = _baseline_prepared(current, intel.aggregate)
    baseline = _evaluate(unstressed, thresholds, None)
    results = [_evaluate(p, thresholds, intel.aggregate) for p in prepared]
    portfolio = _portfolio_section(positions, request, scenarios_cfg, market, now, current)
    for result, p in zip([baseline, *results], [unstressed, *prepared], strict=True):
        result["portfolio"] = _impact(p, positions, portfolio, scenarios_cfg, current)
    body: dict[str, Any] = {
        "verdict": _verdict(core, verification, baseline, results, now),
        "market": _market_section(intel, market, now, request.now is not None, thresholds),
        BASELINE_KEY: baseline,
        "scenarios": results,
        "portfolio": portfolio,
    }
    if request.compare is not None:
        body["comparison"] = compare_reports(request.compare, body)
    inputs = [verification.config.path, verification.baseline.path, scenarios_source.path]
    if request.positions_file is not None:
        inputs.append(request.positions_file)
    if request.compare is not None:
        inputs.append(request.compare)
    signed = core.stress_lab.signed_section
    body = finite(body)
    if signed != "verdict":
        body[signed] = body.pop("verdict")
    return StressLabResult(verification, body, inputs + market.files, signed)


def _check_governed_scenarios(core: CoreConfig, cfg: StressScenariosConfig, path: Path) -> None:
    if BASELINE in cfg.hypothetical:
        raise ConfigError(
            f"hypothetical.{BASELINE}: the name is reserved for the unstressed market row; "
            "rename the scenario",
            where=str(path),
        )
    missing = sorted(set(core.stress_lab.scenarios) - set(cfg.hypothetical))
    if missing:
        raise ConfigError(
            f"hypothetical: core.yaml's governed scenario(s) {', '.join(missing)} are not "
            "defined here; every stress_lab.scenarios entry of core.yaml needs one",
            where=str(path),
        )


def window_label(hours: float) -> str:
    """24 -> '24h', 168 -> '7d', 36 -> '36h'."""
    if hours >= 48 and hours % 24 == 0:
        return f"{int(hours // 24)}d"
    return f"{int(hours)}h" if float(hours).is_integer() else f"{hours}h"


def historical_name(symbol: str, hours: float, direction: str) -> str:
    return f"hist_{symbol.lower()}_{window_label(hours)}_{direction}"


def scenario_names(cfg: StressScenariosConfig, symbols: list[str]) -> list[str]:
    """Every scenario name, hypothetical first, in run order."""
    historical = [
        historical_name(s, h, d)
        for s in symbols
        for h in cfg.historical.windows_hours
        for d in cfg.historical.directions
    ]
    return [*cfg.hypothetical, *historical]


def _select(requested: tuple[str, ...], cfg: StressScenariosConfig, symbols: list[str]) -> set[str]:
    known = scenario_names(cfg, symbols)
    unknown = [n for n in requested if n not in known]
    if unknown:
        raise InputError(
            f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(known)}",
            where="--scenario",
        )
    return set(requested) if requested else set(known)


def _positions(
    home: Home, path: Path | None, symbols: list[str]
) -> tuple[str, list[PositionInput]]:
    if path is not None:
        positions, source = load_positions_file(path), str(path)
    else:
        from_state = positions_from_state(home)
        positions = from_state or []
        source = "state database" if from_state is not None else "none (no state database)"
    unknown = sorted({p.symbol for p in positions} - set(symbols))
    if unknown:
        raise InputError(
            f"no market data to price position(s) in {', '.join(unknown)} "
            f"(symbols with data: {', '.join(symbols)})",
            where=str(path) if path is not None else str(home.state_path),
        )
    return source, positions


def _thresholds(core: CoreConfig) -> StressThresholds:
    from stagectl.domain.stress import StressThresholds

    return StressThresholds(**core.stress_lab.thresholds.model_dump())


def _hypothetical(
    names: set[str],
    cfg: StressScenariosConfig,
    core: CoreConfig,
    current: dict[str, MarketIntelSnapshot],
    aggregate: MarketIntelSnapshot,
) -> list[_Prepared]:
    from stagectl.domain.stress import Scenario, Shock

    out = []
    for name, spec in cfg.hypothetical.items():
        if name not in names:
            continue
        governed = core.stress_lab.scenarios.get(name)
        scenario = Scenario(
            name,
            tuple(Shock(s.metric, s.op, s.value) for s in spec.shocks),
            price_moves_pct={s: spec.price_moves_pct.get(s, spec.price_move_pct) for s in current},
            threshold_overrides=governed.overrides.present() if governed is not None else {},
            description=spec.description,
        )
        market = dict.fromkeys(current, scenario)
        out.append(
            _Prepared(name, "hypothetical", spec.description, scenario, current, aggregate, market)
        )
    return out


def _baseline_prepared(
    current: dict[str, MarketIntelSnapshot], aggregate: MarketIntelSnapshot
) -> _Prepared:
    """The live market at ``now`` as a scenario without shocks, price moves or overrides."""
    from stagectl.domain.stress import Scenario

    description = "The live market at now, unstressed (Market Intel), against the base thresholds."
    scenario = Scenario(BASELINE, description=description)
    market = dict.fromkeys(current, scenario)
    return _Prepared(BASELINE, BASELINE, description, scenario, current, aggregate, market)


def _historical(
    names: set[str],
    cfg: StressScenariosConfig,
    core: CoreConfig,
    market: market_intel.MarketData,
    now: datetime,
    current: dict[str, MarketIntelSnapshot],
) -> list[_Prepared]:
    """Worst moves per symbol, window and direction, searched in the closed bars before
    ``now`` from the first ``baseline_days`` of data on (each window keeps its baseline)."""
    import pandas as pd

    windows = market_intel.windows_from(core)
    out = []
    for symbol, data in market.symbols.items():
        wanted = [
            (h, d)
            for h in cfg.historical.windows_hours
            for d in cfg.historical.directions
            if historical_name(symbol, h, d) in names
        ]
        if not wanted:
            continue
        candles = data.candles
        index = pd.DatetimeIndex(candles.index)
        bar = pd.Timedelta(index[1:].to_series().diff().median()) if len(index) > 2 else None
        bar = bar if bar is not None and not pd.isna(bar) else pd.Timedelta(hours=1)
        start = index[0] + pd.Timedelta(days=windows.baseline_days)
        usable = candles[(index >= start) & (index + bar <= pd.Timestamp(now))]
        for hours, direction in wanted:
            out.append(
                _historical_one(symbol, hours, direction, usable, market, windows, bar, current)
            )
    return out


def _historical_one(
    symbol: str,
    hours: float,
    direction: str,
    usable: Any,
    market: market_intel.MarketData,
    windows: Any,
    bar: Any,
    current: dict[str, MarketIntelSnapshot],
) -> _Prepared:
    from stagectl.domain.market_intel import (
        InsufficientDataError,
        aggregate_snapshots,
        compute_snapshot,
    )
    from stagectl.domain.stress import Scenario, Shock, worst_moves

    name = historical_name(symbol, hours, direction)
    label = window_label(hours)
    try:
        move = worst_moves(usable, hours, direction="down" if direction == "down" else "up")
    except ValueError as error:
        raise InputError(
            f"{name}: the data before --now is too short for a {label} window "
            f"after the {windows.baseline_days:g}-day baseline ({error})",
            where=market.source,
        ) from None
    hist_windows = replace(windows, lookback_hours=hours)
    snapshots: dict[str, MarketIntelSnapshot] = {}
    first = move.end - timedelta(hours=hours + 24, days=hist_windows.baseline_days)
    for other, data in market.symbols.items():
        try:
            snapshots[other] = compute_snapshot(
                other, _slice(data, first, move.end), move.end, hist_windows
            )
        except InsufficientDataError:
            continue
    moves = {s: _move_pct(market.symbols[s].candles, move.start, move.end, bar) for s in current}
    market_scenarios = {
        s: Scenario(
            name,
            (
                Shock("spread_bps", "set", snap.spread_bps),
                Shock("liquidity_drop_pct", "set", snap.liquidity_drop_pct),
            ),
        )
        for s, snap in snapshots.items()
    }
    for s in current:
        market_scenarios.setdefault(s, Scenario(name))
    verb = "fall" if direction == "down" else "rise"
    start, end = _iso(move.start), _iso(move.end)
    description = (
        f"Worst {label} {verb} of {symbol} in the data: {move.return_pct:+.2f} % "
        f"from {start} to {end}; Market Intel replayed at {end} with a {label} window."
    )
    window = {
        "symbol": symbol,
        "hours": hours,
        "direction": direction,
        "start": start,
        "end": end,
        "return_pct": move.return_pct,
        "symbols_in_window": sorted(snapshots),
    }
    scenario = Scenario(name, (), price_moves_pct=moves, description=description)
    aggregate = aggregate_snapshots(list(snapshots.values()), hist_windows)
    return _Prepared(
        name, "historical", description, scenario, snapshots, aggregate, market_scenarios, window
    )


def _slice(data: SymbolMarketData, start: datetime, end: datetime) -> SymbolMarketData:
    """The rows in [start, end] of every series: the window and its baseline, so each
    historical snapshot works on a few hundred bars instead of the whole history."""
    import pandas as pd

    from stagectl.domain.market_intel import SymbolMarketData

    lo, hi = pd.Timestamp(start), pd.Timestamp(end)

    def cut(frame: Any) -> Any:
        return None if frame is None else frame.loc[lo:hi]

    return SymbolMarketData(cut(data.candles), cut(data.funding), cut(data.spot_candles))


def _move_pct(candles: Any, start: datetime, end: datetime, bar: Any) -> float:
    """close(bar closing at end) / close(bar closing at start) - 1, in percent (0 if absent)."""
    import math

    import pandas as pd

    close = candles["close"]
    first = close.asof(pd.Timestamp(start) - bar)
    last = close.asof(pd.Timestamp(end) - bar)
    if not (isinstance(first, float) and isinstance(last, float)) or math.isnan(first + last):
        return 0.0
    return (last / first - 1.0) * 100.0


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _check_dict(check: Any, symbols: list[str], cause: str | None) -> dict[str, Any]:
    return {
        "metric": check.metric,
        "value": check.value,
        "limit": check.limit,
        "direction": check.direction,
        "breached": check.breached,
        "cause": cause if check.breached else None,
        "symbols": symbols,
    }


def _further_past(value: float, baseline: float, direction: str) -> bool:
    """Whether ``value`` lies strictly further past the limit's side than ``baseline``:
    higher for ``above``, lower for ``below``, larger magnitude for ``abs_above``. A value
    that is NaN where the other is not counts as further (the data changed nature);
    two NaNs do not."""
    if math.isnan(value) or math.isnan(baseline):
        return math.isnan(value) != math.isnan(baseline)
    if direction == "above":
        return value > baseline
    if direction == "below":
        return value < baseline
    return abs(value) > abs(baseline)


def breach_cause(check: Any, baseline_at_limit: Any, baseline_at_base_limit: Any) -> str:
    """``baseline`` or ``scenario`` for a breached scenario check.

    ``baseline`` when all three hold: the unstressed value breaches the base threshold
    (so the breach is listed on the baseline row), it breaches the limit this scenario
    was checked against (the same limit, overrides included), and the stressed value is
    not further past that limit than the unstressed one. Otherwise ``scenario``: the
    shock (or the replayed historical window, or a tighter override) caused or worsened
    the breach. The arguments are domain ``MetricCheck`` rows of the same metric.
    """
    if not (baseline_at_limit.breached and baseline_at_base_limit.breached):
        return "scenario"
    if _further_past(check.value, baseline_at_limit.value, check.direction):
        return "scenario"
    return BASELINE


def _evaluate(
    p: _Prepared, thresholds: StressThresholds, live: MarketIntelSnapshot | None
) -> dict[str, Any]:
    """Checks on the aggregate row; ``symbols`` names the symbols breaching on their own.

    ``live`` is the unstressed aggregate at now each breach's cause is judged against;
    None for the baseline row itself, whose breaches are all ``baseline``."""
    from dataclasses import asdict

    from stagectl.domain.stress import StressMetrics, evaluate, run_scenario

    total = run_scenario(StressMetrics.from_snapshot(p.aggregate), p.scenario, thresholds)
    own = {
        s: set(run_scenario(StressMetrics.from_snapshot(snap), p.scenario, thresholds).breached)
        for s, snap in p.snapshots.items()
    }
    causes = dict.fromkeys((c.metric for c in total.checks), BASELINE)
    if live is not None:
        unstressed = StressMetrics.from_snapshot(live)
        at_limit = evaluate(unstressed, thresholds, p.scenario.threshold_overrides)
        at_base = evaluate(unstressed, thresholds)
        causes = {
            c.metric: breach_cause(c, lim, base)
            for c, lim, base in zip(total.checks, at_limit, at_base, strict=True)
        }
    checks = [
        _check_dict(c, [s for s, hit in own.items() if c.metric in hit], causes[c.metric])
        for c in total.checks
    ]
    return {
        "name": p.name,
        "kind": p.kind,
        "description": p.description,
        "shocks": [asdict(s) for s in p.scenario.shocks],
        "threshold_overrides": dict(p.scenario.threshold_overrides),
        "window": p.window,
        "price_moves_pct": dict(p.scenario.price_moves_pct),
        "checks": checks,
        "breaches": [c for c in checks if c["breached"]],
    }


def _marks(market: market_intel.MarketData, now: datetime) -> dict[str, float]:
    """The close of each symbol's last bar closed at or before ``now``."""
    import pandas as pd

    marks = {}
    for symbol, data in market.symbols.items():
        index = pd.DatetimeIndex(data.candles.index)
        bar = index[-1] - index[-2]
        closed = data.candles["close"][index + bar <= pd.Timestamp(now)]
        marks[symbol] = float(closed.iloc[-1])
    return marks


def _portfolio_section(
    positions: tuple[str, list[PositionInput]],
    request: StressRequest,
    cfg: StressScenariosConfig,
    market: market_intel.MarketData,
    now: datetime,
    current: dict[str, MarketIntelSnapshot],
) -> dict[str, Any]:
    """Positions at mark and the account assumptions every scenario's impact uses.

    Equity: ``--equity`` when given, else a fully funded account: the entry notional
    as collateral plus the unrealized PnL at mark."""
    source, rows = positions
    marks = _marks(market, now)
    listed = [
        {
            "symbol": p.symbol,
            "qty": p.qty,
            "entry_price": p.entry_price,
            "mark_price": marks[p.symbol],
            "notional_usd": abs(p.qty) * marks[p.symbol],
            "unrealized_pnl_usd": p.qty * (marks[p.symbol] - p.entry_price),
        }
        for p in rows
    ]
    if request.equity_usd is not None:
        equity, equity_source = request.equity_usd, "--equity"
    else:
        equity = sum(
            abs(p.qty) * p.entry_price + p.qty * (marks[p.symbol] - p.entry_price) for p in rows
        )
        equity_source = "assumed fully funded: entry notional plus unrealized PnL at mark"
    return {
        "source": source,
        "positions": listed,
        "equity_usd": equity,
        "equity_source": equity_source,
        "leverage": cfg.portfolio.leverage,
        "taker_fee_bps": cfg.portfolio.taker_fee_bps,
        "liquidation_horizon_hours": cfg.portfolio.liquidation_horizon_hours,
    }


def _impact(
    p: _Prepared,
    positions: tuple[str, list[PositionInput]],
    portfolio: dict[str, Any],
    cfg: StressScenariosConfig,
    current: dict[str, MarketIntelSnapshot],
) -> dict[str, Any] | None:
    from dataclasses import asdict

    from stagectl.domain.stress import Position, portfolio_impact, stressed_market

    rows = positions[1]
    if not rows:
        return None
    marks = {row["symbol"]: row["mark_price"] for row in portfolio["positions"]}
    spread, liquidity = {}, {}
    for symbol in {r.symbol for r in rows}:
        spread[symbol], hourly = stressed_market(current[symbol], p.market[symbol])
        liquidity[symbol] = hourly * cfg.portfolio.liquidation_horizon_hours
    impact = portfolio_impact(
        [Position(r.symbol, r.qty, r.entry_price, marks[r.symbol]) for r in rows],
        price_moves_pct=p.scenario.price_moves_pct,
        spread_bps=spread,
        liquidity_usd=liquidity,
        equity_usd=portfolio["equity_usd"],
        leverage=cfg.portfolio.leverage,
        taker_fee_bps=cfg.portfolio.taker_fee_bps,
    )
    result = asdict(impact)
    result["stressed_spread_bps"] = spread
    result["stressed_liquidity_usd"] = liquidity
    return result


def _verdict_row(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("metric", "value", "limit", "direction", "cause", "symbols")
    return {
        "name": result["name"],
        "kind": result["kind"],
        "breached": bool(result["breaches"]),
        "breaches": [{k: b[k] for k in keys} for b in result["breaches"]],
    }


def _verdict(
    core: CoreConfig,
    verification: verify_thresholds.VerifyThresholdsResult,
    baseline: dict[str, Any],
    results: list[dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """The signed section: thresholds with the config sha256, verification, the baseline
    row, then the scenarios' breaches with their cause. ``breach_count`` counts every
    scenario breach, ``scenario_caused_breach_count`` those the shocks caused or worsened."""
    scenarios = [_verdict_row(r) for r in results]
    count = sum(len(s["breaches"]) for s in scenarios)
    caused = [[b for b in s["breaches"] if b["cause"] == "scenario"] for s in scenarios]
    baseline_row = _verdict_row(baseline)
    return {
        "status": "breach" if count or baseline_row["breached"] else "pass",
        "as_of": _iso(now),
        "thresholds": core.stress_lab.thresholds.model_dump(),
        "scenario_overrides": {
            n: s.overrides.present() for n, s in core.stress_lab.scenarios.items()
        },
        "config": {
            "path": str(verification.config.path),
            "sha256": verification.config_sha256,
        },
        "baseline": {
            "path": str(verification.baseline.path),
            "sha256": verification.baseline_sha256,
        },
        "verification": {
            "passed": verification.passed,
            "checks": len(verification.checks),
            "failed": sum(not c.passed for c in verification.checks),
        },
        "baseline_breach_count": len(baseline_row["breaches"]),
        "scenarios_run": len(scenarios),
        "scenarios_breached": sum(s["breached"] for s in scenarios),
        "scenarios_breached_beyond_baseline": sum(bool(c) for c in caused),
        "breach_count": count,
        "scenario_caused_breach_count": sum(len(c) for c in caused),
        "market_baseline": baseline_row,
        "scenarios": scenarios,
    }


def _market_section(
    intel: Any,
    market: market_intel.MarketData,
    now: datetime,
    now_given: bool,
    thresholds: StressThresholds,
) -> dict[str, Any]:
    from dataclasses import asdict

    from stagectl.domain.stress import StressMetrics, evaluate

    rows = {s.symbol: asdict(StressMetrics.from_snapshot(s)) for s in intel.rows()}
    baseline = evaluate(StressMetrics.from_snapshot(intel.aggregate), thresholds)
    return {
        "as_of": _iso(now),
        "now_source": "--now" if now_given else "end of the common data",
        "source": market.source,
        "symbols": list(market.symbols),
        "metrics": rows,
        "baseline_breaches": [c.metric for c in baseline if c.breached],
        "aggregate_weight": intel.aggregate.weight,
    }


def compare_reports(path: Path, body: dict[str, Any]) -> dict[str, Any]:
    """What changed since an earlier stress-lab report: breaches added/removed and metric
    deltas in the scenarios both reports ran, and the scenarios only one of them ran."""
    from stagectl.reports import read_report

    previous = read_report(path)
    if previous.get("kind") != KIND:
        raise InputError(
            f"not a stress-lab report (kind {previous.get('kind')!r})", where=str(path)
        )
    try:
        old = {s["name"]: s for s in _rows(previous["body"])}
        old_breaches = {(n, c["metric"]) for n, s in old.items() for c in s["breaches"]}
    except (KeyError, TypeError):
        raise InputError("malformed stress-lab report body", where=str(path)) from None
    new = {s["name"]: s for s in _rows(body)}
    new_breaches = {(n, c["metric"]) for n, s in new.items() for c in s["breaches"]}
    both = new.keys() & old.keys()
    old_breaches = {pair for pair in old_breaches if pair[0] in both}
    new_breaches = {pair for pair in new_breaches if pair[0] in both}
    deltas: dict[str, dict[str, Any]] = {}
    for name in sorted(both):
        before = {c["metric"]: c.get("value") for c in old[name].get("checks", [])}
        for check in new[name]["checks"]:
            was, now_value = before.get(check["metric"]), check["value"]
            if isinstance(was, int | float) and isinstance(now_value, int | float):
                deltas.setdefault(name, {})[check["metric"]] = {
                    "previous": was,
                    "current": now_value,
                    "delta": now_value - was,
                }

    def listed(pairs: set[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"scenario": s, "metric": m} for s, m in sorted(pairs)]

    return {
        "previous": {
            "path": str(path),
            "generated_at": previous.get("generated_at"),
            "sha256": file_sha256(path),
        },
        "breaches_added": listed(new_breaches - old_breaches),
        "breaches_removed": listed(old_breaches - new_breaches),
        "scenarios_added": sorted(new.keys() - old.keys()),
        "scenarios_removed": sorted(old.keys() - new.keys()),
        "metric_deltas": deltas,
    }


def _rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The baseline row (absent from reports made before it existed), then the scenarios."""
    baseline = body.get(BASELINE_KEY)
    return [*([baseline] if baseline else []), *body["scenarios"]]
