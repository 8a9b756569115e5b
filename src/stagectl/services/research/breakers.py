"""Circuit breakers in the backtest: ``stagectl backtest --breakers [--preset NAME]``.

1. The backtest is run at full size (the caller's first ``run_backtest``).
2. ``domain.breakers.apply_breakers`` reads its per-bar portfolio net returns and its
   closed trades (pnl by exit time) and returns per-bar size multipliers ``m``; the
   volatility breaker watches the portfolio's own returns.
3. The multipliers scale the sleeves' targets and the backtest is run again, so
   resizing trades (going flat on a daily stop, halving on a streak) pay fee and
   slippage.

Timing, one bar more conservative than the breakers' own convention: the return
stamped t[k] is realised on the position held from open[k-1], so ``m[k]`` (which uses
returns stamped up to t[k-1]) scales ``held[k]``, the position entered at open[k]:
``target'[j] = target[j] * m[j + signal_delay]``. No multiplier uses the bar it sizes.

Settings: ``config/risk_presets.yaml`` ``circuit_breakers``; ``--preset`` replaces the
daily drawdown stop with that preset's ``daily_loss_stop_pct``. The breakers are
evaluated once on the full-size run (one pass; the second run's own returns are not
fed back).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from stagectl.config.home import Home
from stagectl.config.loader import load_risk_presets
from stagectl.domain.backtest import BacktestResult, SleeveSpec
from stagectl.domain.breakers import (
    DAILY_DRAWDOWN,
    LOSS_STREAK,
    VOLATILITY,
    BreakerResult,
    BreakerSettings,
    Firing,
    apply_breakers,
)
from stagectl.errors import InputError

PRESETS = ("conservative", "balanced", "aggressive")


@dataclass(frozen=True)
class BreakerPlan:
    """The settings used and where they came from."""

    settings: BreakerSettings
    preset: str | None
    source: str


def breaker_plan(home: Home, preset: str | None) -> BreakerPlan:
    """Settings from risk_presets.yaml; a preset overrides the daily drawdown stop."""
    config, source = load_risk_presets(home)
    overrides: dict[str, Any] = {}
    if preset is not None:
        if preset not in config.presets:
            known = ", ".join(sorted(config.presets))
            raise InputError(f"unknown preset {preset!r} (presets: {known})", where="--preset")
        overrides["daily_drawdown_stop_pct"] = config.presets[preset].daily_loss_stop_pct
    settings = BreakerSettings.from_config(config.circuit_breakers, **overrides)
    return BreakerPlan(settings=settings, preset=preset, source=source.describe())


def closed_trade_pnl(result: BacktestResult) -> pd.Series:
    """Closed trades' pnl indexed by exit time, in time order."""
    trades = result.trades
    if trades.empty:
        return pd.Series(dtype=float)
    closed = trades[~trades["is_open"].astype(bool)].sort_values("exit_time", kind="stable")
    return pd.Series(
        closed["pnl"].to_numpy(dtype=float), index=pd.DatetimeIndex(closed["exit_time"])
    )


def scaled_sleeves(
    sleeves: list[SleeveSpec], result: BacktestResult, plan: BreakerPlan, signal_delay: int
) -> tuple[list[SleeveSpec], BreakerResult]:
    """The sleeves with breaker-scaled targets, and the breakers' output."""
    breakers = apply_breakers(
        result.net_returns, trade_pnl=closed_trade_pnl(result), settings=plan.settings
    )
    held_scale = breakers.multiplier.shift(-signal_delay).fillna(1.0)
    scaled = [replace(s, target=s.target * held_scale.to_numpy()) for s in sleeves]
    return scaled, breakers


def breaker_section(
    plan: BreakerPlan, breakers: BreakerResult, unguarded: dict[str, Any]
) -> dict[str, Any]:
    """The report section: settings, firings, bars reduced, and the full-size metrics."""
    components = breakers.components
    counts = {name: 0 for name in (DAILY_DRAWDOWN, LOSS_STREAK, VOLATILITY)}
    for firing in breakers.firings:
        counts[firing.breaker] += 1
    s = plan.settings
    return {
        "preset": plan.preset,
        "source": plan.source,
        "settings": {
            "daily_drawdown_stop_pct": s.daily_drawdown_stop_pct,
            "daily_reset_utc": s.daily_reset_utc,
            "streak_losses": s.streak_losses,
            "streak_size_multiplier": s.streak_size_multiplier,
            "volatility_percentile": s.volatility_percentile,
            "volatility_window_bars": s.volatility_window_bars,
            "volatility_lookback_bars": s.volatility_lookback_bars,
            "defense_multiplier": s.defense_multiplier,
        },
        "firing_counts": counts,
        "bars_reduced": {name: int((components[name] < 1.0).sum()) for name in counts},
        "firings": [firing_event(f) for f in breakers.firings],
        "without_breakers": unguarded,
    }


def firing_event(firing: Firing) -> dict[str, Any]:
    event = firing.as_event()
    event["time"] = pd.Timestamp(firing.time).isoformat().replace("+00:00", "Z")
    return event
