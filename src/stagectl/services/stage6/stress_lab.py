"""stress-lab: threshold verification first, then every scenario against the thresholds.

Entry: ``run(StressRequest, *, home) -> StressLabResult``.

Order (seed 000, Stress Lab decision 3): ``verify_thresholds.run`` audits core.yaml
against the approved baseline in-process; when it fails the run stops and nothing
is published. Then publication (``--out``, ``--html``) needs core.yaml's compliance
sign-off (``services.stage6.compliance``; seed 000: a change takes effect only after
the compliance report is signed): without one it is refused before any scenario runs,
and a dry look records in the signed verdict that there was none. Then Market Intel
is computed at ``now`` (services.market_intel), each hypothetical scenario of
config/stress_scenarios.yaml shocks the current metrics, each historical scenario
replays Market Intel at the end of a worst move found in the data
(services.stress_history), and every scenario is checked on the aggregate row against
core.yaml's thresholds (the blackout scenario with its overrides;
services.stress_verdict) and applied to the positions. ``--compare`` diffs against an
earlier report (services.stress_compare). The maths is G's (``stagectl.domain.stress``);
this module only orchestrates: it prepares the hypothetical and baseline rows, prices
the portfolio and assembles the body.

A ``baseline`` row, the unstressed Market Intel aggregate at ``now`` checked against the
base thresholds, comes first, and every scenario breach carries a ``cause``
(``stress_verdict.breach_cause``): ``baseline`` when the live market already breaches that
limit at least as badly, ``scenario`` when the shock (or the replayed window) caused or
worsened it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagectl.config.home import Home
from stagectl.config.loader import load_core
from stagectl.errors import ConfigError, InputError
from stagectl.services.stage6 import compliance, market_intel, verify_thresholds
from stagectl.services.stage6.market_intel import finite
from stagectl.services.stage6.stress_compare import compare_reports
from stagectl.services.stage6.stress_history import historical_name, historical_scenarios
from stagectl.services.stage6.stress_positions import (
    PositionInput,
    load_positions_file,
    positions_from_state,
)
from stagectl.services.stage6.stress_verdict import (
    BASELINE,
    BASELINE_KEY,
    KIND,
    PreparedScenario,
    build_verdict,
    evaluate_scenario,
    iso_utc,
)

if TYPE_CHECKING:
    from stagectl.config.core import CoreConfig
    from stagectl.config.stress_scenarios import StressScenariosConfig
    from stagectl.domain.market_intel import MarketIntelSnapshot
    from stagectl.domain.stress import StressThresholds

__all__ = ["KIND", "StressLabResult", "StressRequest", "run"]  # KIND: the report's kind


@dataclass(frozen=True)
class StressRequest:
    """``-c``, ``--scenarios``, ``--data``, ``--now``, ``--positions``, ``--scenario``,
    ``--equity`` and ``--compare``; None: the default each option's help names.
    ``publish``: the option that publishes the report (``--out``, ``--html``), which
    needs the compliance sign-off; None: a dry look."""

    config: Path | None = None
    scenarios_file: Path | None = None
    data_dir: Path | None = None
    now: datetime | None = None
    positions_file: Path | None = None
    scenario_names: tuple[str, ...] = ()
    equity_usd: float | None = None
    compare: Path | None = None
    publish: str | None = None


@dataclass(frozen=True)
class StressLabResult:
    """A blocked result carries only the verification (and no compliance)."""

    verification: verify_thresholds.VerifyThresholdsResult
    body: dict[str, Any] = field(default_factory=dict)
    inputs: list[Path] = field(default_factory=list)
    verdict_section: str = "verdict"  # core.yaml's stress_lab.signed_section
    compliance: compliance.Compliance | None = None

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


def run(
    request: StressRequest, *, home: Home, progress: Callable[[int, int], None] | None = None
) -> StressLabResult:
    """Verify, then run the scenarios; a blocked result carries only the verification.

    ``progress(done, total)`` is told of each stage: verified, market loaded, scenarios
    prepared, evaluated."""
    from stagectl.config.stress_scenarios import load_stress_scenarios

    stage = progress or (lambda done, total: None)
    stage(0, 4)

    verification = verify_thresholds.run(
        verify_thresholds.VerifyThresholdsRequest(config=request.config), home=home
    )
    if not verification.passed:
        return StressLabResult(verification)
    stage(1, 4)
    gate = compliance.check(verification.config, home=home)
    if request.publish is not None:
        gate.require(f"stress-lab {request.publish}")
    core, _ = load_core(home, request.config)
    scenarios_cfg, scenarios_source = load_stress_scenarios(home, request.scenarios_file)
    _check_governed_scenarios(core, scenarios_cfg, scenarios_source.path)
    symbols = market_intel.select_symbols(core, request.data_dir)
    names = _select(request.scenario_names, scenarios_cfg, symbols)
    positions = _positions(home, request.positions_file, symbols)
    market = market_intel.load_market(symbols, request.data_dir)
    now = request.now if request.now is not None else market.default_now()
    intel = market_intel.compute(market, now, core)
    stage(2, 4)
    current = {s.symbol: s for s in intel.snapshots}
    prepared = [
        *_hypothetical(names, scenarios_cfg, core, current, intel.aggregate),
        *historical_scenarios(names, scenarios_cfg, core, market, now, current),
    ]
    stage(3, 4)
    thresholds = _thresholds(core)
    unstressed = _baseline_prepared(current, intel.aggregate)
    baseline = evaluate_scenario(unstressed, thresholds, None)
    results = [evaluate_scenario(p, thresholds, intel.aggregate) for p in prepared]
    portfolio = _portfolio_section(positions, request, scenarios_cfg, market, now, current)
    for result, p in zip([baseline, *results], [unstressed, *prepared], strict=True):
        result["portfolio"] = _impact(p, positions, portfolio, scenarios_cfg, current)
    stage(4, 4)
    body: dict[str, Any] = {
        "verdict": build_verdict(core, verification, gate, baseline, results, now),
        "market": _market_section(intel, market, now, request.now is not None, thresholds),
        BASELINE_KEY: baseline,
        "scenarios": results,
        "portfolio": portfolio,
    }
    if request.compare is not None:
        body["comparison"] = compare_reports(request.compare, body)
    inputs = [verification.config.path, verification.baseline.path, scenarios_source.path]
    if gate.sign_off is not None:
        inputs.append(gate.sign_off.path)
    if request.positions_file is not None:
        inputs.append(request.positions_file)
    if request.compare is not None:
        inputs.append(request.compare)
    section = core.stress_lab.signed_section
    body = finite(body)
    if section != "verdict":
        body[section] = body.pop("verdict")
    return StressLabResult(verification, body, inputs + market.files, section, gate)


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


def scenario_names(
    home: Home,
    *,
    config: Path | None = None,
    scenarios_file: Path | None = None,
    data_dir: Path | None = None,
) -> list[str]:
    """Every name ``--scenario`` takes with these configs and data (shell completion)."""
    from stagectl.config.stress_scenarios import load_stress_scenarios

    core, _ = load_core(home, config)
    scenarios_cfg, _ = load_stress_scenarios(home, scenarios_file)
    return _scenario_names(scenarios_cfg, market_intel.select_symbols(core, data_dir))


def _scenario_names(cfg: StressScenariosConfig, symbols: list[str]) -> list[str]:
    """Every scenario name, hypothetical first, in run order."""
    historical = [
        historical_name(s, h, d)
        for s in symbols
        for h in cfg.historical.windows_hours
        for d in cfg.historical.directions
    ]
    return [*cfg.hypothetical, *historical]


def _select(requested: tuple[str, ...], cfg: StressScenariosConfig, symbols: list[str]) -> set[str]:
    known = _scenario_names(cfg, symbols)
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
) -> list[PreparedScenario]:
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
            PreparedScenario(
                name, "hypothetical", spec.description, scenario, current, aggregate, market
            )
        )
    return out


def _baseline_prepared(
    current: dict[str, MarketIntelSnapshot], aggregate: MarketIntelSnapshot
) -> PreparedScenario:
    """The live market at ``now`` as a scenario without shocks, price moves or overrides."""
    from stagectl.domain.stress import Scenario

    description = "The live market at now, unstressed (Market Intel), against the base thresholds."
    scenario = Scenario(BASELINE, description=description)
    market = dict.fromkeys(current, scenario)
    return PreparedScenario(BASELINE, BASELINE, description, scenario, current, aggregate, market)


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
    p: PreparedScenario,
    positions: tuple[str, list[PositionInput]],
    portfolio: dict[str, Any],
    cfg: StressScenariosConfig,
    current: dict[str, MarketIntelSnapshot],
) -> dict[str, Any] | None:
    from dataclasses import asdict

    from stagectl.domain.stress import ScenarioPosition, portfolio_impact, stressed_market

    rows = positions[1]
    if not rows:
        return None
    marks = {row["symbol"]: row["mark_price"] for row in portfolio["positions"]}
    spread, liquidity = {}, {}
    for symbol in {r.symbol for r in rows}:
        spread[symbol], hourly = stressed_market(current[symbol], p.market[symbol])
        liquidity[symbol] = hourly * cfg.portfolio.liquidation_horizon_hours
    impact = portfolio_impact(
        [ScenarioPosition(r.symbol, r.qty, r.entry_price, marks[r.symbol]) for r in rows],
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
        "as_of": iso_utc(now),
        "now_source": "--now" if now_given else "end of the common data",
        "source": market.source,
        "symbols": list(market.symbols),
        "metrics": rows,
        "baseline_breaches": [c.metric for c in baseline if c.breached],
        "aggregate_weight": intel.aggregate.weight,
    }
