"""Replay the strategy with the risk guard obeyed (guarded) and ignored (unguarded).

The guard is evaluated at every evaluation time (each bar, or each daily check);
its actions change the sleeves' position multipliers from that bar on, which
changes the guarded equity the later evaluations see. The loop advances from one
state change to the next, and each step is vectorised: the backtest and the
indicators are recomputed once per state change, not once per bar.

Actions (seed 003 §4; docs/risk-guard.md):

- FLATTEN_ALL: every sleeve to 0. Restart when the runbook's restart conditions
  hold on the strategy itself (the unguarded shadow): 20-day Sharpe above
  ``sharpe_20d_min``, 60-day Sharpe above ``backtest_sharpe_60d_min``, drawdown
  from its 60-day peak below ``max_mdd_pct`` (the all-time drawdown of a strategy
  that once lost more than 8 % could never narrow below 8 %, so it is measured
  over the same 60 days as the backtest Sharpe); human sign-off is assumed at
  that evaluation. A restart starts a new drawdown epoch for the guarded equity.
- REDUCE_RISK_50: every sleeve to ``position_multiplier`` (0.5). Reviewed every
  ``reevaluate_after_h`` (the first evaluation at or after each due time), as the live
  guard reviews it (``domain.directives.review_reduce``): no REDUCE_RISK_50 rule
  breaching -> RECOVER one step (0.5 -> 0.75 -> 1.0); the rule that issued it further
  past its threshold than when it fired -> FLATTEN_ALL (escalated); else it stays.
- DISABLE_SLEEVE: that sleeve to 0; reviewed every ``reevaluate_after_days``: it comes
  back once its own 30-day Sharpe (shadow) exceeds ``reenable_backtest_sharpe_30d_min``
  (``domain.directives.review_sleeve``); its drawdown is then measured from the
  re-enable (a new peak), else the flat days at its trough would disable it again at
  once.
- WARNING and MANUAL_REVIEW change no position; they are listed as triggers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from stagectl.config.risk_guard import RiskGuardConfig
from stagectl.domain.backtest import BacktestResult, SleeveSpec, run_backtest
from stagectl.domain.directives import (
    Review,
    further_past,
    recovered_multiplier,
    review_reduce,
    review_sleeve,
)
from stagectl.domain.restart import sleeve_sharpe_30d, strategy_health
from stagectl.domain.risk_indicators import GuardInputs, compute_indicators, restrict
from stagectl.domain.risk_rules import (
    ACTION_RANK,
    DecisionTable,
    IndicatorFrames,
    RuleHit,
    daily_check_times,
    evaluate_rules,
)


@dataclass(frozen=True)
class CostModel:
    fee_bps: float = 5.0
    slippage_bps: float = 3.0
    cost_multiplier: float = 1.0
    initial_equity: float = 100_000.0
    signal_delay: int = 1


@dataclass(frozen=True)
class GuardAction:
    """A change of the guard's directives, applied from ``at`` on."""

    at: pd.Timestamp
    kind: str  # FLATTEN_ALL, RESTART, REDUCE_RISK_50, RECOVER, DISABLE_SLEEVE, ENABLE_SLEEVE
    sleeve: str | None
    multipliers: dict[str, float]
    reason: str


@dataclass
class _State:
    sleeves: tuple[str, ...]
    flattened_at: pd.Timestamp | None = None
    reduce_level: float = 1.0
    reduce_review_at: pd.Timestamp | None = None
    reduce_issue: tuple[str, str | None, float] | None = None
    """The rule (id, sleeve) that issued the REDUCE_RISK_50 and its scaled value then."""
    disabled: dict[str, pd.Timestamp] = field(default_factory=dict)

    def multipliers(self) -> dict[str, float]:
        if self.flattened_at is not None:
            return dict.fromkeys(self.sleeves, 0.0)
        return {s: 0.0 if s in self.disabled else self.reduce_level for s in self.sleeves}


@dataclass(frozen=True)
class ReplayResult:
    eval_times: pd.DatetimeIndex
    unguarded: BacktestResult
    guarded: BacktestResult
    multipliers: pd.DataFrame
    actions: tuple[GuardAction, ...]
    triggers: tuple[RuleHit, ...]
    decisions: DecisionTable


def guard_inputs(result: BacktestResult, state: pd.DataFrame, **extra: object) -> GuardInputs:
    """The risk indicators' inputs from a backtest (``state``: unscaled positions).

    A backtest trades exactly its position changes, each sleeve's as one fill at the
    bar's open: the turnover of a bar is ``sum_i w_i |delta position_i| / sum_i w_i``
    (positions are fractions of the sleeve's ``w_i`` share of the equity before the
    bar), each sleeve that moved is one trade, and each fill's slippage is its
    slippage cost over its traded notional, in bps (the assumed slippage).
    """
    equity = result.equity
    equity_before = equity.shift(1).fillna(result.initial_equity)
    sleeve_pnl = result.sleeve_contribution.mul(equity_before, axis=0)
    moves = result.positions.diff().abs().fillna(result.positions.abs())
    weights = pd.Series(result.weights).reindex(moves.columns)
    notional = result.sleeve_turnover.mul(weights, axis=1).mul(equity_before, axis=0)
    slipped = (moves > 0) & (result.sleeve_slippage > 0) & (notional > 0)
    fill_bps = (result.sleeve_slippage / notional.where(slipped) * 1e4).fillna(0.0)
    return GuardInputs(
        equity=equity,
        sleeve_pnl=sleeve_pnl,
        sleeve_equity=result.sleeve_equity,
        position_state=state,
        turnover=moves.mul(weights, axis=1).sum(axis=1) / (weights.sum() or 1.0),
        trades=(moves > 0).astype(float),
        funding_paid=result.costs["funding"],
        slippage_bps_sum=fill_bps.sum(axis=1),
        slippage_fills=slipped.sum(axis=1).astype(float),
        **extra,  # type: ignore[arg-type]
    )


def evaluation_times(index: pd.DatetimeIndex, mode: str, daily_utc: str) -> pd.DatetimeIndex:
    """Every bar (``hourly``) or the daily check times (``daily``)."""
    if mode == "hourly":
        return index
    if mode == "daily":
        return daily_check_times(index, daily_utc)
    raise ValueError(f"evaluation mode must be hourly or daily, got {mode!r}")


def _scaled(sleeves: Sequence[SleeveSpec], multipliers: pd.DataFrame) -> list[SleeveSpec]:
    return [replace(s, target=s.target * multipliers[s.symbol]) for s in sleeves]


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _action_mask(table: DecisionTable, action: str, sleeve: str | None = None) -> np.ndarray:
    rows = [
        k
        for k, (rule, s) in enumerate(table.keys)
        if rule.action == action and (sleeve is None or s == sleeve)
    ]
    if not rows:
        return np.zeros(len(table.eval_times), dtype=bool)
    return np.asarray(table.breach_matrix[rows].any(axis=0), dtype=bool)


@dataclass(frozen=True)
class _Shadow:
    """The unguarded strategy's health, for restart and re-enable decisions."""

    sharpe_20d: np.ndarray
    sharpe_60d: np.ndarray
    drawdown_pct: np.ndarray
    sleeve_sharpe_30d: dict[str, np.ndarray]

    def tail(self, offset: int) -> _Shadow:
        """The arrays from eval position ``offset`` on."""
        return _Shadow(
            self.sharpe_20d[offset:],
            self.sharpe_60d[offset:],
            self.drawdown_pct[offset:],
            {s: v[offset:] for s, v in self.sleeve_sharpe_30d.items()},
        )


def _shadow(
    unguarded: BacktestResult, frames: IndicatorFrames, eval_times: pd.DatetimeIndex
) -> _Shadow:
    health = strategy_health(unguarded.net_returns, unguarded.equity).reindex(eval_times)
    return _Shadow(
        sharpe_20d=frames.portfolio["rolling_sharpe_20d"].reindex(eval_times).to_numpy(),
        sharpe_60d=health["sharpe_60d"].to_numpy(),
        drawdown_pct=health["drawdown_60d_pct"].to_numpy(),
        sleeve_sharpe_30d={
            s: sleeve_sharpe_30d(unguarded.sleeve_net_returns[s]).reindex(eval_times).to_numpy()
            for s in unguarded.sleeve_net_returns.columns
        },
    )


def _restart_at(
    times: pd.DatetimeIndex, state: _State, shadow: _Shadow, start: int, config: RiskGuardConfig
) -> tuple[int, str, str | None, str] | None:
    """The first eval position at or after ``start`` where a flattened book may restart.

    Not before the post-mortem deadline (``post_mortem_within_h`` after the
    flatten): the runbook restarts only once the cause is understood.
    """
    restart = config.restart_conditions
    earliest = state.flattened_at + pd.Timedelta(  # type: ignore[operator]
        hours=config.actions.flatten_all.post_mortem_within_h
    )
    with np.errstate(invalid="ignore"):
        ok = (
            (shadow.sharpe_20d > restart.sharpe_20d_min)
            & (shadow.sharpe_60d > restart.backtest_sharpe_60d_min)
            & (shadow.drawdown_pct < restart.max_mdd_pct)
            & np.asarray(times >= earliest)
        )
    ok[:start] = False
    i = _first(ok)
    if i is None:
        return None
    return i, "RESTART", None, "restart conditions hold (human sign-off assumed)"


def _reviews(times: pd.DatetimeIndex, due: pd.Timestamp, period: pd.Timedelta) -> Iterator[int]:
    """The eval positions of the reviews from ``due`` on: the first evaluation at or after
    each due time; the next is due one period after that review (as the live guard, which
    records a review at the evaluation that makes it)."""
    while (i := int(times.searchsorted(due))) < len(times):
        yield i
        due = times[i] + period


def _reduce_issue(table: DecisionTable, i: int) -> tuple[str, str | None, float] | None:
    """The first REDUCE_RISK_50 rule breaching at eval position ``i`` (the one that issues
    the directive) and its scaled value."""
    for k, (rule, sleeve) in enumerate(table.keys):
        if rule.action == "REDUCE_RISK_50" and table.breach_matrix[k, i]:
            return rule.id, sleeve, float(table.values[k, i]) * rule.scale
    return None


def _worsened(table: DecisionTable, i: int, issue: tuple[str, str | None, float] | None) -> bool:
    if issue is None:
        return False
    rule_id, sleeve, issued = issue
    for k, (rule, s) in enumerate(table.keys):
        if rule.id == rule_id and s == sleeve and table.breach_matrix[k, i]:
            return further_past(rule.op, float(table.values[k, i]) * rule.scale, issued)
    return False


def _reduce_review(
    table: DecisionTable, state: _State, start: int, period: pd.Timedelta, reduce: np.ndarray
) -> tuple[int, str, str] | None:
    """The first review from ``start`` on that changes the reduced book: RECOVER or an
    escalation to FLATTEN_ALL (earlier reviews kept it; ``start`` may be the position of
    the last action, whose review may still be due: see ``_next_action``)."""
    if state.reduce_review_at is None:
        return None
    for i in _reviews(table.eval_times, state.reduce_review_at, period):
        if i < start:
            continue
        worsened = bool(reduce[i]) and _worsened(table, i, state.reduce_issue)
        review = review_reduce(state.reduce_level, breaching=bool(reduce[i]), worsened=worsened)
        if review.outcome == Review.RECOVERED:
            return i, "RECOVER", "review after 24 h: REDUCE rules clear"
        if review.outcome == Review.WORSENED:
            why = "review after 24 h: REDUCE rule worse than when it fired (escalated)"
            return i, "FLATTEN_ALL", why
    return None


def _next_action(
    table: DecisionTable, state: _State, shadow: _Shadow, start: int, config: RiskGuardConfig
) -> tuple[int, str, str | None, str] | None:
    """The earliest state change at or after eval position ``start`` (book not flattened).

    A review may also act at ``start - 1``, the position of the last action: the live guard
    makes every review that is due at one evaluation, so one action there (a RECOVER, say)
    must not push a sleeve's re-enable, due at the same time, a whole period later.
    """
    times = table.eval_times
    window = np.arange(len(times)) >= start
    reviews_from = max(start - 1, 0)
    candidates: list[tuple[int, int, str, str | None, str]] = []

    def offer(mask: np.ndarray, priority: int, kind: str, sleeve: str | None, why: str) -> None:
        i = _first(mask & window)
        if i is not None:
            candidates.append((i, priority, kind, sleeve, why))

    offer(_action_mask(table, "FLATTEN_ALL"), 0, "FLATTEN_ALL", None, "FLATTEN_ALL rule")
    reduce = _action_mask(table, "REDUCE_RISK_50")
    if state.reduce_level >= 1.0:
        offer(reduce, 1, "REDUCE_RISK_50", None, "REDUCE_RISK_50 rule")
    else:
        period = pd.Timedelta(hours=config.actions.reduce_risk_50.reevaluate_after_h)
        found = _reduce_review(table, state, reviews_from, period, reduce)
        if found is not None:
            candidates.append((found[0], 1, found[1], None, found[2]))
    disable = config.actions.disable_sleeve
    for sleeve in state.sleeves:
        if sleeve in state.disabled:
            period = pd.Timedelta(days=disable.reevaluate_after_days)
            sharpe = shadow.sleeve_sharpe_30d[sleeve]
            for i in _reviews(times, state.disabled[sleeve], period):
                value = float(sharpe[i])
                healthy = review_sleeve(value, disable.reenable_backtest_sharpe_30d_min)
                if i >= reviews_from and healthy == Review.RECOVERED:
                    why = "30-day sleeve Sharpe recovered"
                    candidates.append((i, 2, "ENABLE_SLEEVE", sleeve, why))
                    break
        else:
            mask = _action_mask(table, "DISABLE_SLEEVE", sleeve)
            offer(mask, 2, "DISABLE_SLEEVE", sleeve, "DISABLE_SLEEVE rule")
    if not candidates:
        return None
    first = min(candidates, key=lambda c: (c[0], c[1]))
    return first[0], first[2], first[3], first[4]


def _apply(
    state: _State, kind: str, sleeve: str | None, at: pd.Timestamp, config: RiskGuardConfig
) -> None:
    actions = config.actions
    if kind == "FLATTEN_ALL":
        state.flattened_at = at
    elif kind == "RESTART":
        state.flattened_at = None
        state.reduce_level, state.reduce_review_at = 1.0, None
        state.disabled.clear()
    elif kind == "REDUCE_RISK_50":
        state.reduce_level = actions.reduce_risk_50.position_multiplier
        state.reduce_review_at = at + pd.Timedelta(hours=actions.reduce_risk_50.reevaluate_after_h)
    elif kind == "RECOVER":
        state.reduce_level = recovered_multiplier(state.reduce_level)
        state.reduce_review_at = (
            None
            if state.reduce_level >= 1.0
            else at + pd.Timedelta(hours=actions.reduce_risk_50.reevaluate_after_h)
        )
    elif kind == "DISABLE_SLEEVE" and sleeve is not None:
        state.disabled[sleeve] = at + pd.Timedelta(
            days=actions.disable_sleeve.reevaluate_after_days
        )
    elif kind == "ENABLE_SLEEVE" and sleeve is not None:
        state.disabled.pop(sleeve, None)


def rising_edges(table: DecisionTable) -> tuple[RuleHit, ...]:
    """Each rule's breaches where they start (a breach lasting a week is one trigger)."""
    previous = np.zeros_like(table.breach_matrix)
    previous[:, 1:] = table.breach_matrix[:, :-1]
    starts = table.breach_matrix & ~previous
    hits: list[RuleHit] = []
    for i in np.flatnonzero(starts.any(axis=0)):
        decision = table.decision(int(i))
        started = {
            table.keys[k][0].id + str(table.keys[k][1]) for k in np.flatnonzero(starts[:, i])
        }
        hits.extend(h for h in decision.hits if h.rule_id + str(h.sleeve) in started)
    return tuple(hits)


def replay(
    sleeves: Sequence[SleeveSpec],
    config: RiskGuardConfig,
    *,
    costs: CostModel,
    evaluation: str = "hourly",
    max_actions: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Run the strategy guarded and unguarded over the sleeves' whole index."""
    kwargs = {
        "fee_bps": costs.fee_bps,
        "slippage_bps": costs.slippage_bps,
        "cost_multiplier": costs.cost_multiplier,
        "initial_equity": costs.initial_equity,
        "signal_delay": costs.signal_delay,
    }
    unguarded = run_backtest(sleeves, **kwargs)  # type: ignore[arg-type]
    positions = unguarded.positions
    state_frame = pd.DataFrame(
        np.sign(positions.to_numpy()), index=positions.index, columns=positions.columns
    )
    index = pd.DatetimeIndex(unguarded.equity.index)
    eval_times = evaluation_times(index, evaluation, config.schedule.daily_utc)
    rules = config.rules
    evaluate = {
        "daily_utc": config.schedule.daily_utc,
        "near_threshold_pct": config.near_threshold_pct,
    }
    shadow = _shadow(
        unguarded, compute_indicators(guard_inputs(unguarded, state_frame)), eval_times
    )
    names = tuple(s.symbol for s in sleeves)
    state = _State(sleeves=names)
    multipliers = pd.DataFrame(1.0, index=index, columns=list(names))
    resets: list[pd.Timestamp] = []
    sleeve_resets: dict[str, list[pd.Timestamp]] = {s: [] for s in names}
    actions: list[GuardAction] = []
    start = 0
    guarded = unguarded
    while len(actions) < max_actions:
        if state.flattened_at is not None:
            found = _restart_at(eval_times, state, shadow, start, config)
        else:
            # Times before the current epoch never change again: evaluate from its start.
            epoch_start = resets[-1] if resets else None
            offset = 0 if epoch_start is None else int(eval_times.searchsorted(epoch_start))
            inputs = guard_inputs(guarded, state_frame, sleeve_resets=sleeve_resets)
            if epoch_start is not None:
                inputs = restrict(inputs, epoch_start, None)
            table = evaluate_rules(
                compute_indicators(inputs),
                rules,
                eval_times[offset:],
                **evaluate,  # type: ignore[arg-type]
            )
            found = _next_action(table, state, shadow.tail(offset), start - offset, config)
            if found is not None:
                found = (found[0] + offset, *found[1:])
        if found is None:
            break
        i, kind, sleeve, why = found
        at = eval_times[i]
        if kind == "REDUCE_RISK_50":
            state.reduce_issue = _reduce_issue(table, i - offset)
        _apply(state, kind, sleeve, at, config)
        if kind == "RESTART":
            resets.append(at)
        elif kind == "ENABLE_SLEEVE" and sleeve is not None:
            sleeve_resets[sleeve].append(at)
        now = state.multipliers()
        actions.append(GuardAction(at, kind, sleeve, now, why))
        multipliers.loc[multipliers.index >= at, list(now)] = list(now.values())
        guarded = run_backtest(_scaled(sleeves, multipliers), **kwargs)  # type: ignore[arg-type]
        start = i + 1
        if progress is not None:
            progress(start, len(eval_times))
    if progress is not None:
        progress(len(eval_times), len(eval_times))
    final = evaluate_rules(
        compute_indicators(
            guard_inputs(
                guarded, state_frame, drawdown_resets=tuple(resets), sleeve_resets=sleeve_resets
            )
        ),
        rules,
        eval_times,
        **evaluate,  # type: ignore[arg-type]
    )
    return ReplayResult(
        eval_times, unguarded, guarded, multipliers, tuple(actions), rising_edges(final), final
    )


def worst_action(table: DecisionTable) -> str:
    """The most severe action the guard recommended anywhere in the table."""
    if not len(table.action_rank):
        return "NO_ACTION"
    return table.action(int(np.argmax(table.action_rank)))


__all__ = [
    "ACTION_RANK",
    "CostModel",
    "GuardAction",
    "ReplayResult",
    "evaluation_times",
    "guard_inputs",
    "replay",
    "rising_edges",
    "worst_action",
]
