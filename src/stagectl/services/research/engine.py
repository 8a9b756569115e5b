"""Shared engine of walk-forward, CPCV and the strategy audit (docs/research.md, "Commands").

The strategy (TSMOM EMA sleeves) has no fitted parameters. What these commands "train"
is a selection: among a small grid of configurations (the config's lookbacks scaled by
0.5, 1 and 2, times debounce 1 (off), 2 and 4 bars), the one with the best in-sample
Sharpe is chosen and then traded out of sample. ``--fixed`` evaluates the config alone.

Scoring a window: a contiguous range of bars ``[lo, hi)`` is backtested as its own
backtest, exactly as ``stagectl backtest --start t[lo] --end t[hi-1]`` does it: the
signal is computed on the whole history (EMA and debounce are causal, so bars before
``lo`` only warm it up), the window starts flat, the first ``signal_delay`` bars are
flat and the entry is charged. :class:`ReturnsEngine` reproduces
``domain.backtest.run_backtest`` on the window with ``backtest_core`` on numpy slices
(an integration test checks it bar for bar against ``run_backtest``), so a grid of
configurations over dozens of windows stays well under a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stagectl.config.home import ConfigSource, Home
from stagectl.config.loader import file_sha256, load_strategy
from stagectl.config.strategy import ExecutionConfig, SleeveConfig, StrategyConfig
from stagectl.domain.backtest import backtest_core, close_at_data_end, funding_per_bar
from stagectl.domain.performance import periods_per_year, sharpe
from stagectl.domain.strategies import held_positions
from stagectl.services.strategy.sleeves import (
    SleeveBuildInfo,
    SleeveData,
    build_sleeves,
    load_sleeve_data,
    sleeve_target,
)

LOOKBACK_SCALES = (1.0, 0.5, 2.0)
DEBOUNCE_CHOICES = (2, 1, 4)


@dataclass(frozen=True)
class Candidate:
    """One configuration of the selection grid."""

    name: str
    lookback_scale: float
    debounce_bars: int
    config: StrategyConfig

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lookback_scale": self.lookback_scale,
            "debounce_bars": self.debounce_bars,
            "lookbacks_bars": {s.symbol: list(s.lookbacks) for s in self.config.sleeves},
        }


def with_lookbacks(sleeve: SleeveConfig, looks: tuple[int, ...]) -> SleeveConfig:
    """``sleeve`` with EMA lookbacks ``looks``: one makes it ``tsmom_ema`` (unless it is a
    ``tsmom_multi_ema`` sleeve), several ``tsmom_multi_ema``."""
    multi = len(looks) > 1 or sleeve.signal == "tsmom_multi_ema"
    return sleeve.model_copy(
        update={
            "signal": "tsmom_multi_ema" if multi else "tsmom_ema",
            "lookbacks_bars": looks if multi else None,
            "lookback_bars": None if multi else looks[0],
        }
    )


def with_debounce(execution: ExecutionConfig, bars: int) -> ExecutionConfig:
    """``execution`` debounced over ``bars`` bars (1: debounce off)."""
    return execution.model_copy(update={"debounce": bars > 1, "debounce_bars": bars})


def scaled_lookbacks(sleeve: SleeveConfig, scale: float) -> tuple[int, ...]:
    """The sleeve's lookbacks times ``scale``, rounded, at least 1."""
    return tuple(max(1, round(n * scale)) for n in sleeve.lookbacks)


def _scaled(config: StrategyConfig, scale: float, debounce_bars: int) -> StrategyConfig:
    sleeves = tuple(with_lookbacks(s, scaled_lookbacks(s, scale)) for s in config.sleeves)
    execution = with_debounce(config.execution, debounce_bars)
    return config.model_copy(update={"sleeves": sleeves, "execution": execution})


def candidate_grid(config: StrategyConfig, *, fixed: bool) -> list[Candidate]:
    """The config itself first (it wins ties), then the rest of the 3 x 3 grid."""
    base_debounce = config.execution.debounce_bars if config.execution.debounce else 1
    base = Candidate(f"as configured (x1, debounce {base_debounce})", 1.0, base_debounce, config)
    if fixed:
        return [base]
    grid = [base]
    for scale in LOOKBACK_SCALES:
        for bars in DEBOUNCE_CHOICES:
            if scale == 1.0 and bars == base_debounce:
                continue
            grid.append(
                Candidate(
                    f"lookbacks x{scale:g}, debounce {bars}",
                    scale,
                    bars,
                    _scaled(config, scale, bars),
                )
            )
    return grid


def warmup_bars(config: StrategyConfig) -> int:
    """Bars before a target can first be non-zero: longest lookback + debounce - 1."""
    extra = config.execution.debounce_bars - 1 if config.execution.debounce else 0
    return max(max(s.lookbacks) for s in config.sleeves) + max(extra, 0)


@dataclass(frozen=True)
class Market:
    """The aligned data of the strategy's sleeves over their whole common history."""

    config: StrategyConfig
    source: ConfigSource
    config_sha256: str
    info: SleeveBuildInfo
    index: pd.DatetimeIndex
    symbols: list[str]
    weights: np.ndarray
    opens: np.ndarray
    funding: np.ndarray
    closes: dict[str, pd.Series]
    last_bars: dict[str, pd.Timestamp] = field(default_factory=dict)
    """Delisted sleeves (``SleeveSpec.last_bar``): flat from that bar on."""

    @property
    def inputs(self) -> list[Path]:
        return [self.source.path, *self.info.files]

    @property
    def periods_per_year(self) -> float:
        return periods_per_year(self.config.timeframe)


def load_market(home: Home, config_path: Path | None, data_dir: Path | None) -> Market:
    """Load the strategy config and its sleeves' candles and funding (whole overlap)."""
    return load_market_and_data(home, config_path, data_dir)[0]


def load_market_and_data(
    home: Home, config_path: Path | None, data_dir: Path | None
) -> tuple[Market, SleeveData]:
    """:func:`load_market`, and the candles and funding as read (each file once), for a
    caller that also backtests them whole (the audit's holdouts). The frames stay off the
    Market, which goes to every Dask worker."""
    config, source = load_strategy(home, config_path)
    data = load_sleeve_data(config, [s.symbol for s in config.sleeves], data_dir)
    specs, info = build_sleeves(config, data_dir, None, None, data=data)
    index = pd.DatetimeIndex(specs[0].open.index)
    closes = {
        spec.symbol: data.candles[spec.symbol]["close"].reindex(index).ffill() for spec in specs
    }
    market = Market(
        config=config,
        source=source,
        config_sha256=file_sha256(source.path),
        info=info,
        index=index,
        symbols=[s.symbol for s in specs],
        weights=np.array([s.weight for s in specs], dtype=float),
        opens=np.column_stack([s.open.to_numpy(dtype=float) for s in specs]),
        funding=np.column_stack([funding_per_bar(index, s.funding) for s in specs]),
        closes=closes,
        last_bars={s.symbol: s.last_bar for s in specs if s.last_bar is not None},
    )
    return market, data


@dataclass(frozen=True)
class WindowResult:
    """A window backtest: portfolio and per-sleeve net returns, and the trades entered."""

    net: np.ndarray
    sleeve_net: np.ndarray
    trades: int


@dataclass
class ReturnsEngine:
    """Window backtests of each candidate on one market (see the module docstring)."""

    market: Market
    candidates: list[Candidate]
    cost_multiplier: float = 1.0
    _held: list[np.ndarray] = field(default_factory=list, init=False, repr=False)
    _cache: dict[tuple[int, int, int], WindowResult] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        delay = self.market.config.execution.signal_delay_bars
        for candidate in self.candidates:
            columns = []
            for sleeve in candidate.config.sleeves:
                if sleeve.symbol not in self.market.closes:
                    continue
                target = sleeve_target(sleeve, self.market.closes[sleeve.symbol], candidate.config)
                held = held_positions(target, delay).to_numpy(dtype=float)
                last_bar = self.market.last_bars.get(sleeve.symbol)
                columns.append(close_at_data_end(held, self.market.index, last_bar))
            self._held.append(np.column_stack(columns))
        costs = self.market.config.costs
        self.cost_rate = (costs.fee_bps + costs.slippage_bps) * self.cost_multiplier / 1e4

    @property
    def n_bars(self) -> int:
        return len(self.market.index)

    def window(self, candidate: int, lo: int, hi: int) -> WindowResult:
        """The backtest of bars ``[lo, hi)`` started flat, as ``stagectl backtest`` would."""
        key = (candidate, lo, hi)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        delay = self.market.config.execution.signal_delay_bars
        held = self._held[candidate][lo:hi].copy()
        held[:delay] = 0.0
        nets, trades = [], 0
        for s in range(held.shape[1]):
            core = backtest_core(
                self.market.opens[lo:hi, s],
                held[:, s],
                self.market.funding[lo:hi, s],
                self.cost_rate,
            )
            nets.append(core.net)
            sign = np.sign(held[:, s])
            previous = np.concatenate(([0.0], sign[:-1]))
            trades += int(np.sum((sign != 0) & (sign != previous)))
        sleeve_net = np.column_stack(nets)
        result = WindowResult(sleeve_net @ self.market.weights, sleeve_net, trades)
        self._cache[key] = result
        return result

    def ranges(self, candidate: int, ranges: list[tuple[int, int]]) -> np.ndarray:
        """Each contiguous range backtested from flat, the returns concatenated."""
        parts = [self.window(candidate, lo, hi).net for lo, hi in ranges]
        return np.concatenate(parts) if parts else np.zeros(0)

    def select(self, ranges: list[tuple[int, int]]) -> tuple[int, list[float | None]]:
        """The candidate with the best in-sample Sharpe on ``ranges`` (ties: the first;
        an undefined Sharpe, e.g. always flat, ranks last)."""
        scores = [
            sharpe(self.ranges(c, ranges), self.market.periods_per_year)
            for c in range(len(self.candidates))
        ]
        ranked = [-math.inf if s is None else s for s in scores]
        return int(np.argmax(ranked)), scores


def return_metrics(returns: np.ndarray, ppy: float) -> dict[str, float | None]:
    """Sharpe (performance.sharpe), total return prod(1 + r) - 1, max drawdown from equity
    prod(1 + r) with initial 1 (positive fraction)."""
    if returns.size == 0:
        return {"sharpe": None, "total_return": None, "max_drawdown": None}
    equity = np.cumprod(1.0 + returns)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0))
    return {
        "sharpe": sharpe(returns, ppy),
        "total_return": finite(equity[-1] - 1.0),
        "max_drawdown": finite(-float(np.min(equity / peak - 1.0))),
    }


def finite(value: float | None) -> float | None:
    """A JSON-safe float: None for None, NaN and infinities."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def stamp(moment: pd.Timestamp | Any) -> str:
    return pd.Timestamp(moment).isoformat().replace("+00:00", "Z")


def strategy_section(
    market: Market, candidates: list[Candidate], cost_multiplier: float
) -> dict[str, Any]:
    """What was evaluated: config, data, grid, costs."""
    info = market.info
    return {
        "name": market.config.name,
        "config": {
            "path": str(market.source.path),
            "sha256": market.config_sha256,
            "packaged": market.source.packaged,
        },
        "timeframe": market.config.timeframe,
        "symbols": market.symbols,
        "weights": dict(zip(market.symbols, market.weights.tolist(), strict=True)),
        "data_source": info.data_source,
        "data_start": stamp(info.start),
        "data_end": stamp(info.end),
        "bars": info.bars,
        "cost_multiplier": cost_multiplier,
        "candidates": [c.describe() for c in candidates],
        "selection": (
            "none: the config as is (--fixed)"
            if len(candidates) == 1
            else "the candidate with the best in-sample Sharpe on the training bars"
        ),
    }
