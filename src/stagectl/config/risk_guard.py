"""config/risk_guard_alt_ensemble.yaml: the Alt Ensemble's risk guard (seed 003 §2-7).

An indicator has a scope (portfolio or sleeve) and a normal range. A rule breaches
when ``indicator * scale <op> value`` holds on ``consecutive_days`` daily checks in
a row; ``abs>`` compares the absolute value; ``not_in`` takes a list. A rule's
action and severity follow the runbook's incident playbook (§4).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from stagectl.config._base import (
    ConfigModel,
    Count,
    DayCount,
    Days,
    Hours,
    Integer,
    Items,
    Minutes,
    NonNegative,
    Number,
    Pct,
    PeriodsPerYear,
    Seconds,
    Severity,
    Symbol,
    UtcTime,
)

Scope = Literal["portfolio", "sleeve"]
Operator = Literal["<", "<=", ">", ">=", "abs>", "not_in"]
Action = Literal[
    "NO_ACTION", "WARNING", "REDUCE_RISK_50", "DISABLE_SLEEVE", "FLATTEN_ALL", "MANUAL_REVIEW"
]
IndicatorName = Literal[
    "daily_pnl_pct",
    "rolling_sharpe_20d",
    "running_mdd_pct",
    "return_30d_pct",
    "daily_turnover_pct",
    "realized_slippage_bps",
    "funding_drag_bps_per_day",
    "signal_mismatch_pct",
    "sleeve_mdd_pct",
    "sleeve_contribution_30d_pct",
    "position_state",
    "trades_24h",
]
MAX_RETRIES = 10
"""Notification retries: each waits longer than the last (notify/_http.py)."""


class IndicatorSpec(ConfigModel):
    """An indicator's normal range; ``normal_values`` for a discrete state."""

    scope: Scope
    normal_min: Number | None = None
    normal_max: Number | None = None
    normal_values: Items[Integer] | None = None
    window_days: DayCount | None = None
    annualization_periods: PeriodsPerYear | None = None


class Rule(ConfigModel):
    id: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    indicator: IndicatorName
    op: Operator
    value: Number | Items[Number]
    scale: Number = 1.0
    consecutive_days: DayCount = 1
    action: Action
    severity: Severity
    scope: Scope
    message: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Rule:
        if (self.op == "not_in") != isinstance(self.value, tuple):
            raise ValueError("op not_in takes a list value; every other op takes a number")
        return self


class Schedule(ConfigModel):
    daily_utc: UtcTime
    hourly_cron: str
    weekly_weekday: Literal[
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
    ]
    weekly_utc: UtcTime


class Escalation(ConfigModel):
    notify: bool
    human_review_within_h: Hours | None = None


class FlattenAllAction(ConfigModel):
    confirm_within_min: Minutes
    auto_execute_real_mode_only: bool
    cancel_open_orders: bool
    post_mortem_within_h: Hours


class ReduceRiskAction(ConfigModel):
    position_multiplier: Annotated[float, Field(gt=0, lt=1)]
    confirm_within_h: Hours
    reevaluate_after_h: Hours


class DisableSleeveAction(ConfigModel):
    confirm_within_h: Hours
    reevaluate_after_days: Days
    reenable_backtest_sharpe_30d_min: Number
    reallocate_to: Literal["others_or_cash", "others", "cash"]


class Actions(ConfigModel):
    flatten_all: FlattenAllAction
    reduce_risk_50: ReduceRiskAction
    disable_sleeve: DisableSleeveAction


class RestartConditions(ConfigModel):
    cause_understood: bool
    sharpe_20d_min: Number
    backtest_sharpe_60d_min: Number
    max_mdd_pct: NonNegative
    human_signoff: bool


class ModelHealth(ConfigModel):
    sharpe_7d_min: Number
    drawdown_deepening_days: DayCount
    cost_drift_max_pct: NonNegative
    funding_annualized_max_pct: NonNegative


class Weekly(ConfigModel):
    target_weights_pct: dict[Symbol, Pct]
    tolerance_pct: NonNegative
    limit_timeout_s: Seconds
    model_health: ModelHealth


class PaperGate(ConfigModel):
    days: DayCount
    sharpe_30d_min: Number
    sharpe_annualization_periods: PeriodsPerYear
    max_mdd_pct: NonNegative
    assumed_slippage_bps: NonNegative
    slippage_ratio_max: NonNegative
    assumed_funding_rate_pct: NonNegative
    funding_ratio_max: NonNegative
    signal_consistency_min_pct: Pct
    max_warnings: Count
    max_critical: Count


TelegramChatId = Annotated[int, Field(ge=-(2**52), le=2**52, strict=True)]
"""A Telegram chat id: a user's or a group's (negative) number."""


class TelegramConfig(ConfigModel):
    """The names of the environment variables holding the secrets, never the secrets, and
    how the on-call bot (``stagectl telegram serve``) answers."""

    bot_token_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
    chat_id_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
    bot_token_file: Annotated[str, Field(min_length=1)] | None = None
    """A file holding the bot token (mode 0600), read when ``bot_token_env`` is unset;
    relative paths are taken from the home."""
    command_chat_ids: Items[TelegramChatId] = ()
    """Chats the bot takes commands from besides the alert chat (``chat_id_env``)."""
    confirm_within_s: Annotated[float, Field(gt=0, le=600)] = 60.0
    """A /halt, /reduce_only, /confirm or /cancel acts only on a /yes within this time."""
    command_max_age_s: Annotated[float, Field(gt=0, le=86400)] = 600.0
    """A command older than this when the bot reads it (the bot was down) is not run."""
    poll_timeout_s: Annotated[int, Field(ge=1, le=50)] = 30
    """How long one getUpdates waits for a message (the long poll)."""


AppriseUrl = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://", min_length=4)]
"""An apprise URL (``slack://...``); ``${NAME}`` in it is put in from the environment."""


class NotifyConfig(ConfigModel):
    """Where alerts go and how often. Secrets are never written here: Telegram's are
    named environment variables, an apprise URL takes ``${NAME}`` from the environment,
    and ``apprise_urls_file`` (mode 0600) may hold whole URLs."""

    telegram: TelegramConfig
    webhook_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    apprise_urls: Items[AppriseUrl] = ()
    apprise_urls_file: Annotated[str, Field(min_length=1)] | None = None
    """A file of apprise URLs, one a line; relative paths are taken from the home."""
    retries: Annotated[int, Field(ge=0, le=MAX_RETRIES)]
    alert_within_min: Minutes
    cooldown_h: Hours = 6.0
    """The same rule at the same severity is not notified again within this many hours
    (0: every time); a higher severity is notified at once."""


class RiskGuardConfig(ConfigModel):
    strategy_config: str
    near_threshold_pct: Pct
    schedule: Schedule
    indicators: dict[IndicatorName, IndicatorSpec]
    rules: Items[Rule]
    escalation: dict[Severity, Escalation]
    actions: Actions
    restart_conditions: RestartConditions
    weekly: Weekly
    paper_gate: PaperGate
    notify: NotifyConfig

    @model_validator(mode="after")
    def _rules_are_consistent(self) -> RiskGuardConfig:
        ids = [r.id for r in self.rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate rule ids: {', '.join(duplicates)}")
        for rule in self.rules:
            spec = self.indicators.get(rule.indicator)
            if spec is None:
                raise ValueError(f"rule {rule.id}: indicator {rule.indicator} is not defined")
            if spec.scope != rule.scope:
                raise ValueError(
                    f"rule {rule.id}: scope {rule.scope} but {rule.indicator} is {spec.scope}"
                )
        return self
