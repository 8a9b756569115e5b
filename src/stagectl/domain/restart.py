"""The runbook's restart conditions (seed 003 §4.5), as pure rules.

A book flattened by FLATTEN_ALL restarts only when all of these hold: the cause is
understood (an incident note records it), the 20-day rolling Sharpe > 0, the strategy's
60-day backtest Sharpe > 0.3, drawdown < 8 %, and a named person signs off.

The book is flat after a flatten, so its own returns say nothing about the strategy: the
Sharpe and drawdown conditions judge the strategy as if it had kept trading (the
unguarded backtest up to the as-of time), exactly as ``risk-guard --replay`` restarts a
flattened book. Drawdown is measured from the peak of the same 60 days as the backtest
Sharpe: the all-time drawdown of a strategy that once lost more than 8 % could never
narrow below 8 %, and the runbook does not mean "never restart".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from stagectl.config.risk_guard import RestartConditions
from stagectl.domain.performance import rolling_sharpe

SHARPE_SHORT_DAYS = 20
SHARPE_LONG_DAYS = 60
SLEEVE_SHARPE_DAYS = 30
DRAWDOWN_WINDOW = pd.Timedelta(days=SHARPE_LONG_DAYS)


def trailing_drawdown_pct(equity: pd.Series, window: pd.Timedelta) -> pd.Series:
    """``(peak - equity) / peak * 100`` with the peak over ``(t - window, t]``."""
    peak = equity.rolling(window).max()
    return ((peak - equity) / peak * 100.0).rename("trailing_drawdown_pct")


def strategy_health(net_returns: pd.Series, equity: pd.Series) -> pd.DataFrame:
    """Per bar of an hourly backtest: ``sharpe_20d``, ``sharpe_60d`` (rolling
    ``sqrt(8760) * mean / std`` of hourly net returns) and ``drawdown_60d_pct``."""
    return pd.DataFrame(
        {
            "sharpe_20d": rolling_sharpe(net_returns, SHARPE_SHORT_DAYS),
            "sharpe_60d": rolling_sharpe(net_returns, SHARPE_LONG_DAYS),
            "drawdown_60d_pct": trailing_drawdown_pct(equity, DRAWDOWN_WINDOW),
        }
    )


def sleeve_sharpe_30d(net_returns: pd.Series) -> pd.Series:
    """A sleeve's own 30-day Sharpe per bar, what re-enables a disabled sleeve (seed 003
    §4.4): rolling ``sqrt(8760) * mean / std`` of its hourly net returns over 30 days."""
    return rolling_sharpe(net_returns, SLEEVE_SHARPE_DAYS)


@dataclass(frozen=True)
class StrategyHealth:
    """The strategy's figures at its last bar, what a restart is judged on."""

    at: datetime
    sharpe_20d: float | None
    sharpe_60d: float | None
    drawdown_60d_pct: float | None

    @classmethod
    def last(cls, frame: pd.DataFrame) -> StrategyHealth:
        row = frame.iloc[-1]

        def value(name: str) -> float | None:
            number = float(row[name])
            return number if math.isfinite(number) else None

        return cls(
            at=pd.Timestamp(frame.index[-1]).to_pydatetime(),
            sharpe_20d=value("sharpe_20d"),
            sharpe_60d=value("sharpe_60d"),
            drawdown_60d_pct=value("drawdown_60d_pct"),
        )


@dataclass(frozen=True)
class RestartCheck:
    """One condition: what it requires, what was found, whether it holds."""

    condition: str
    required: str
    found: str
    passed: bool


def _above(value: float | None, minimum: float) -> bool:
    return value is not None and value > minimum


def _shown(value: float | None, unit: str = "") -> str:
    return "n/a (too little data)" if value is None else f"{value:.3f}{unit}"


def restart_checks(
    conditions: RestartConditions,
    health: StrategyHealth,
    *,
    cause: str | None,
    signed_off_by: str | None,
) -> tuple[RestartCheck, ...]:
    """Every §4.5 condition in the runbook's order (a condition the config switches off,
    ``cause_understood: false`` or ``human_signoff: false``, passes and says so)."""
    cause_text = (cause or "").strip()
    signer = (signed_off_by or "").strip()
    drawdown = health.drawdown_60d_pct
    return (
        RestartCheck(
            "cause recorded",
            "an incident note of the cause (--cause TEXT)"
            if conditions.cause_understood
            else "not required (restart_conditions.cause_understood: false)",
            cause_text or "none",
            bool(cause_text) or not conditions.cause_understood,
        ),
        RestartCheck(
            "20-day rolling Sharpe",
            f"> {conditions.sharpe_20d_min:g}",
            _shown(health.sharpe_20d),
            _above(health.sharpe_20d, conditions.sharpe_20d_min),
        ),
        RestartCheck(
            "60-day backtest Sharpe",
            f"> {conditions.backtest_sharpe_60d_min:g}",
            _shown(health.sharpe_60d),
            _above(health.sharpe_60d, conditions.backtest_sharpe_60d_min),
        ),
        RestartCheck(
            "drawdown (60-day peak)",
            f"< {conditions.max_mdd_pct:g} %",
            _shown(drawdown, " %"),
            drawdown is not None and drawdown < conditions.max_mdd_pct,
        ),
        RestartCheck(
            "sign-off",
            "a named person (--signed-off-by NAME)"
            if conditions.human_signoff
            else "not required (restart_conditions.human_signoff: false)",
            signer or "none",
            bool(signer) or not conditions.human_signoff,
        ),
    )
