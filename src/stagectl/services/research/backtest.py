"""backtest: the strategy config's portfolio on candle and funding data (seeds 001, 003).

Loads the strategy config, builds the sleeves with
``strategy_run.build_sleeves`` (the path the risk-guard replay and run-live
share), runs ``domain.backtest.run_backtest`` with the config's fee and
slippage times ``cost_multiplier`` and summarises it with
``domain.performance.summarize`` (Sharpe and Sortino annualised with
sqrt(periods per year): sqrt(8760) for 1h bars). ``cost_model="full"`` charges
each execution the seed 001 cost instead (``services.trade_costs.full_cost_backtest``:
half the prior bars' Corwin-Schultz spread + sqrt(participation) x 5 bps + the Binance
taker fee of risk_presets.yaml, times ``cost_multiplier``). Publishing the report is the
caller's choice through ``stagectl.services.publish``. Asked to, ``run`` then records the
backtest as a run (``record_as``: ``services.research.recording``) and writes the equity
curve and the trades table as CSV files (``export_dir``), in that order.

Entry: ``run(BacktestRequest, *, home, clock) -> BacktestRun``; ``clock`` stamps a
recorded run.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from stagectl.config.home import ConfigSource, Home
from stagectl.config.loader import (
    file_sha256,
    load_data_governance,
    load_risk_presets,
    load_strategy,
)
from stagectl.domain.backtest import BacktestResult, SleeveSpec, run_backtest
from stagectl.domain.performance import periods_per_year, summarize
from stagectl.domain.pretrade_costs import CostSettings
from stagectl.errors import InputError
from stagectl.reports import write_atomic
from stagectl.services.research.recording import RecordSummary, record_backtest
from stagectl.services.strategy.costs import (
    BACKTEST_VENUE,
    PARTICIPATION_CONVENTION,
    SleeveMarket,
    cost_summary,
    full_cost_backtest,
    sleeve_markets,
)
from stagectl.services.strategy.sleeves import SleeveBuildInfo, SleeveData, build_sleeves

if TYPE_CHECKING:
    from stagectl.config.strategy import StrategyConfig

KIND = "backtest"
CAPACITY_METHOD = (
    "equity E at which square-root impact (5 bps x sqrt(participation), participation = "
    "traded notional / the bar's dollar volume = volume x close) would consume half of the "
    "net edge: E = (P_net / (2 x 5e-4 x S))^2, P_net = sum of net returns, "
    "S = sum over fills of a^1.5 / sqrt(V), a = traded fraction of equity; "
    "0 when the net edge is <= 0 (docs/strategies.md, Capacity estimate)"
)


@dataclass(frozen=True)
class BacktestRequest:
    """What the user asked for: the window's first and last instants (UTC) when given,
    the run id to record the backtest as (``--record``) and the ``--export`` directory."""

    config: Path | None = None
    symbol: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    cost_multiplier: float = 1.0
    data_dir: Path | None = None
    breakers: bool = False
    preset: str | None = None
    cost_model: str = "flat"
    record_as: str | None = None
    export_dir: Path | None = None


COST_MODELS = ("flat", "full")


@dataclass(frozen=True)
class Pricing:
    """How trades are charged: the config's flat bps, or the full per-bar model."""

    model: str
    settings: CostSettings | None = None
    markets: list[SleeveMarket] | None = None


@dataclass(frozen=True)
class BacktestRun:
    """The backtest, its metrics, and what it was computed from."""

    strategy: StrategyConfig
    source: ConfigSource
    config_sha256: str
    request: BacktestRequest
    info: SleeveBuildInfo
    result: BacktestResult
    metrics: dict[str, Any]
    pricing: Pricing = Pricing("flat")
    recorded: RecordSummary | None = None
    exported: tuple[Path, ...] = ()

    @property
    def inputs(self) -> list[Path]:
        return [self.source.path, *self.info.files]

    def body(self) -> dict[str, Any]:
        """The report body: strategy as run, data window, metrics."""
        return {
            "strategy": self._strategy_section(),
            "data": self._data_section(),
            "metrics": self.metrics,
        }

    def _strategy_section(self) -> dict[str, Any]:
        config, multiplier = self.strategy, self.request.cost_multiplier
        return {
            "name": config.name,
            "config": {
                "path": str(self.source.path),
                "sha256": self.config_sha256,
                "packaged": self.source.packaged,
            },
            "timeframe": config.timeframe,
            "single_symbol": self.info.single_symbol,
            "sleeves": [
                {
                    "symbol": sleeve.symbol,
                    "signal": sleeve.signal,
                    "lookbacks_bars": list(sleeve.lookbacks),
                    "disagree_weight": sleeve.disagree_weight,
                    "weight": self.info.weights[sleeve.symbol],
                }
                for sleeve in config.sleeves
                if sleeve.symbol in self.info.weights
            ],
            "execution": config.execution.model_dump(mode="json"),
            "costs": {
                **self._cost_model_section(),
                "fee_bps": config.costs.fee_bps,
                "slippage_bps": config.costs.slippage_bps,
                "cost_multiplier": multiplier,
                "effective_fee_bps": config.costs.fee_bps * multiplier,
                "effective_slippage_bps": config.costs.slippage_bps * multiplier,
                "funding_enabled": config.costs.funding_enabled,
            },
            "initial_equity_usd": config.initial_equity_usd,
        }

    def _cost_model_section(self) -> dict[str, Any]:
        settings = self.pricing.settings
        if settings is None:
            return {"model": "flat"}
        return {
            "model": "full",
            "full": {
                "venue": settings.venue,
                "taker_fee_bps": settings.taker_fee_bps,
                "impact_coefficient_bps": settings.impact_coefficient_bps,
                "spread_floor_bps": settings.spread_floor_bps,
                "spread": "Corwin-Schultz estimate of the two bars before the trade, "
                "negative set to 0, floored; half of it is paid per execution",
                "participation": PARTICIPATION_CONVENTION,
            },
        }

    def _data_section(self) -> dict[str, Any]:
        info = self.info
        return {
            "source": info.data_source,
            "files": [path.name for path in info.files],
            "requested_start": None if self.request.start is None else _stamp(self.request.start),
            "requested_end": None if self.request.end is None else _stamp(self.request.end),
            "start": _stamp(info.start),
            "end": _stamp(info.end),
            "bars": info.bars,
            "overlap_start": _stamp(info.overlap_start),
            "overlap_end": _stamp(info.overlap_end),
            "cut_to_overlap": info.cut_to_overlap,
            "missing_bars": info.missing_bars,
            "warmup_bars_needed": info.warmup_bars_needed,
            "warmup_bars_used": info.warmup_bars_used,
            "delisted": {symbol: _stamp(last) for symbol, last in info.delisted.items()},
            "notes": info.notes,
        }


def _stamp(moment: datetime | pd.Timestamp) -> str:
    """ISO-8601 UTC with a ``Z`` suffix."""
    return pd.Timestamp(moment).isoformat().replace("+00:00", "Z")


def _annualisation_text(timeframe: str) -> str:
    """E.g. ``sqrt(8760) for 1h bars``."""
    return f"sqrt({periods_per_year(timeframe):g}) for {timeframe} bars"


def run(
    request: BacktestRequest,
    *,
    home: Home,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BacktestRun:
    """Load, build, backtest and summarise, then record and export when asked;
    InputError/ConfigError (exit 2) on bad input."""
    multiplier = request.cost_multiplier
    if not (math.isfinite(multiplier) and multiplier >= 0):
        raise InputError(
            f"must be a finite number >= 0, got {multiplier}", where="--cost-multiplier"
        )
    start, end = request.start, request.end
    if request.cost_model not in COST_MODELS:
        raise InputError(f"must be flat or full, got {request.cost_model!r}", where="--cost-model")
    strategy, source = load_strategy(home, request.config)
    governance, _ = load_data_governance(home)
    sleeves, info = build_sleeves(
        strategy,
        request.data_dir,
        start,
        end,
        symbol=request.symbol,
        delisting_grace=pd.Timedelta(days=governance.delisting.grace_days),
    )
    pricing = _pricing(home, request, sleeves, strategy)
    result, costs = _simulate(sleeves, strategy, multiplier, pricing)
    breakers: dict[str, Any] | None = None
    if request.breakers or request.preset is not None:
        result, costs, breakers = _with_breakers(home, request, sleeves, result, strategy, pricing)
    metrics = _metrics(result, strategy, info, costs, breakers)
    done = BacktestRun(
        strategy=strategy,
        source=source,
        config_sha256=file_sha256(source.path),
        request=request,
        info=info,
        result=result,
        metrics=metrics,
        pricing=pricing,
    )
    if request.record_as is not None:
        done = replace(done, recorded=record_backtest(home, request.record_as, done, now=clock()))
    if request.export_dir is not None:
        done = replace(done, exported=tuple(_export(done, request.export_dir)))
    return done


@dataclass(frozen=True)
class FlatInput:
    """What flat-cost backtests on loaded data share (a grid's cells, the audit's
    holdouts; sent to each Dask worker once): the strategy, its symbols' data
    (``load_sleeve_data``) read from ``data_dir``, and the cost multiplier of a piece
    that sets none."""

    strategy: StrategyConfig
    data: SleeveData
    data_dir: Path | None
    cost_multiplier: float = 1.0


def flat_metrics(
    strategy: StrategyConfig, data: SleeveData, request: BacktestRequest
) -> tuple[SleeveBuildInfo, dict[str, Any]]:
    """What ``run`` measures for a flat-cost backtest without breakers, on data already
    loaded (``load_sleeve_data``): no file is read and no home is needed, so a grid cell
    or an audit holdout runs the same on a Dask worker as here."""
    sleeves, info = build_sleeves(
        strategy, request.data_dir, request.start, request.end, symbol=request.symbol, data=data
    )
    result, costs = _simulate(sleeves, strategy, request.cost_multiplier, Pricing("flat"))
    return info, _metrics(result, strategy, info, costs, None)


def _metrics(
    result: BacktestResult,
    strategy: StrategyConfig,
    info: SleeveBuildInfo,
    costs: dict[str, Any],
    breakers: dict[str, Any] | None,
) -> dict[str, Any]:
    """``domain.performance.summarize`` with the cost model, breakers and conventions."""
    metrics = summarize(result, strategy.timeframe, info.dollar_volume)
    metrics["cost_model"] = costs
    if breakers is not None:
        metrics["breakers"] = breakers
    metrics["annualisation"] = _annualisation_text(strategy.timeframe)
    metrics["capacity"]["method"] = CAPACITY_METHOD
    return metrics


def _pricing(
    home: Home, request: BacktestRequest, sleeves: list[SleeveSpec], strategy: StrategyConfig
) -> Pricing:
    """The full model's venue settings (risk_presets.yaml) and per-bar market data."""
    if request.cost_model == "flat":
        return Pricing("flat")
    presets, _ = load_risk_presets(home)
    settings = CostSettings.from_config(presets, BACKTEST_VENUE)
    markets = sleeve_markets(sleeves, strategy.timeframe, request.data_dir)
    return Pricing("full", settings, markets)


def _simulate(
    sleeves: list[SleeveSpec], strategy: StrategyConfig, multiplier: float, pricing: Pricing
) -> tuple[BacktestResult, dict[str, Any]]:
    """The backtest under ``pricing`` and its cost summary (``trade_costs.cost_summary``)."""
    common: dict[str, Any] = {
        "cost_multiplier": multiplier,
        "initial_equity": strategy.initial_equity_usd,
        "signal_delay": strategy.execution.signal_delay_bars,
    }
    if pricing.settings is not None and pricing.markets is not None:
        full = full_cost_backtest(sleeves, pricing.markets, pricing.settings, **common)
        return full.result, cost_summary(full.result, multiplier, full)
    result = run_backtest(
        sleeves,
        fee_bps=strategy.costs.fee_bps,
        slippage_bps=strategy.costs.slippage_bps,
        **common,
    )
    return result, cost_summary(result, multiplier)


def _with_breakers(
    home: Home,
    request: BacktestRequest,
    sleeves: list[SleeveSpec],
    full_size: BacktestResult,
    strategy: StrategyConfig,
    pricing: Pricing,
) -> tuple[BacktestResult, dict[str, Any], dict[str, Any]]:
    """Rerun with circuit-breaker-scaled targets (services.research_breakers)."""
    from stagectl.services.research import breakers as research_breakers

    plan = research_breakers.breaker_plan(home, request.preset)
    delay = strategy.execution.signal_delay_bars
    scaled, fired = research_breakers.scaled_sleeves(sleeves, full_size, plan, delay)
    unguarded = summarize(full_size, strategy.timeframe)
    section = research_breakers.breaker_section(
        plan,
        fired,
        {k: unguarded[k] for k in ("total_return", "sharpe_net", "max_drawdown", "trades")},
    )
    result, costs = _simulate(scaled, strategy, request.cost_multiplier, pricing)
    return result, costs, section


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def _iso(values: pd.Series | pd.Index) -> pd.Series:
    """Datetimes as ISO-8601 UTC text; missing times as empty strings."""
    times = pd.Series(pd.DatetimeIndex(values))
    return times.dt.strftime("%Y-%m-%dT%H:%M:%SZ").fillna("")


def _equity_frame(result: BacktestResult) -> pd.DataFrame:
    """timestamp, equity, then ``<SYMBOL>_equity`` per sleeve (standalone sleeve curves)."""
    frame = pd.DataFrame({"timestamp": _iso(result.equity.index)})
    frame["equity"] = result.equity.to_numpy()
    for symbol in result.sleeve_equity.columns:
        frame[f"{symbol}_equity"] = result.sleeve_equity[symbol].to_numpy()
    return frame


def _trades_frame(result: BacktestResult) -> pd.DataFrame:
    """The trades table with ISO-8601 entry and exit times (empty exit: still open)."""
    trades = result.trades.reset_index(drop=True).copy()
    for column in ("entry_time", "exit_time"):
        trades[column] = _iso(trades[column]) if len(trades) else pd.Series(dtype=str)
    return trades


def _export(backtest: BacktestRun, directory: Path) -> list[Path]:
    """Write ``equity.csv`` and ``trades.csv`` into ``directory`` (created), each atomically."""
    if directory.exists() and not directory.is_dir():
        raise InputError("not a directory (--export takes a directory)", where=str(directory))
    written = []
    for name, frame in (
        ("equity.csv", _equity_frame(backtest.result)),
        ("trades.csv", _trades_frame(backtest.result)),
    ):
        path = directory / name
        write_atomic(path, _csv_bytes(frame))
        written.append(path)
    return written
