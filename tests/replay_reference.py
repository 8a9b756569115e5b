"""The guarded replay as it was before it became incremental, frozen as the reference
the incremental one is tested against (tests/unit/test_guard_replay_reference.py).

For tests only. It is the per-action algorithm of stagectl 0.x up to the change that made
``domain.guard_replay.replay`` advance once over the bars: after every guard action it
re-ran the whole backtest and recomputed every indicator from the epoch's start with
pandas (``compute_indicators``, ``evaluate_rules`` as they were then). The backtest
kernel, the rule primitives (``breaches``, ``streak_lengths``, ``decision_table``), the
restart and review rules are the package's own, shared with the code under test; what is
frozen here is what the change replaced.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from stagectl.config.risk_guard import RiskGuardConfig, Rule
from stagectl.domain.backtest import BacktestResult, SleeveSpec, run_backtest
from stagectl.domain.directives import (
    Review,
    further_past,
    recovered_multiplier,
    review_reduce,
    review_sleeve,
)
from stagectl.domain.guard_replay import CostModel, GuardAction, ReplayResult, evaluation_times
from stagectl.domain.performance import rolling_sharpe
from stagectl.domain.restart import sleeve_sharpe_30d, strategy_health
from stagectl.domain.risk_indicators import GuardInputs
from stagectl.domain.risk_rules import (
    DecisionTable,
    IndicatorFrames,
    RuleHit,
    breaches,
    daily_check_times,
    decision_table,
    near_threshold,
    rule_keys,
    streak_lengths,
)
from tests.guard_equality import same

DAY = pd.Timedelta(days=1)


# --- the twelve indicators with pandas (risk_indicators.py as it was) ---------------


def value_days_ago(series: pd.Series, days: float) -> np.ndarray:
    """The last value at or before ``t - days`` for each t (NaN before the start)."""
    index = pd.DatetimeIndex(series.index)
    past = np.searchsorted(index.asi8, (index - pd.Timedelta(days=days)).asi8, side="right") - 1
    values = series.to_numpy(dtype=float)
    return np.where(past >= 0, values[np.maximum(past, 0)], np.nan)


def drawdown_pct(equity: pd.Series, resets: Sequence[pd.Timestamp] = ()) -> pd.Series:
    """``(peak - equity) / peak * 100`` with the running peak.

    Each time in ``resets`` restarts the peak at that bar's equity (a sleeve
    re-enabled after DISABLE_SLEEVE is measured from its re-enable).
    """
    if resets:
        index = pd.DatetimeIndex(equity.index)
        epoch = np.searchsorted(
            pd.DatetimeIndex(sorted(resets)).as_unit(index.unit).asi8, index.asi8, side="right"
        )
        peak = equity.groupby(epoch).cummax()
    else:
        peak = equity.cummax()
    return ((peak - equity) / peak * 100.0).rename("drawdown_pct")


def trailing_sum(series: pd.Series, window: pd.Timedelta) -> pd.Series:
    """Sum over ``(t - window, t]`` (time-based, so irregular bars are fine)."""
    return series.fillna(0.0).rolling(window).sum()


def trailing_mean(
    total: pd.Series, count: pd.Series, window: pd.Timedelta, index: pd.Index
) -> pd.Series:
    """``sum(total) / sum(count)`` over ``(t - window, t]``: each counted item weighs
    the same, whatever bar it fell in; NaN where the window counts none."""
    totals = trailing_sum(total.reindex(index), window)
    counts = trailing_sum(count.reindex(index), window)
    return (totals / counts.where(counts > 0)).astype(float)


def portfolio_indicators(inputs: GuardInputs) -> pd.DataFrame:
    """Indicators 1-8 at every bar."""
    equity = inputs.equity.astype(float)
    # The first bar has no return: NaN, so the 20-day window needs 480 real returns.
    returns = equity.pct_change()
    turnover = inputs.turnover.reindex(equity.index)
    mismatch = (
        inputs.signal_mismatch_pct.reindex(equity.index)
        if inputs.signal_mismatch_pct is not None
        else pd.Series(np.nan, index=equity.index)
    )
    return pd.DataFrame(
        {
            "daily_pnl_pct": (equity.to_numpy() / value_days_ago(equity, 1) - 1.0) * 100.0,
            "rolling_sharpe_20d": rolling_sharpe(
                returns,
                20,
                periods_per_day=inputs.bars_per_day,
                periods_per_year=inputs.periods_per_year,
            ),
            "running_mdd_pct": drawdown_pct(equity),
            "return_30d_pct": (equity.to_numpy() / value_days_ago(equity, 30) - 1.0) * 100.0,
            "daily_turnover_pct": trailing_sum(turnover, DAY) * 100.0,
            "realized_slippage_bps": trailing_mean(
                inputs.slippage_bps_sum, inputs.slippage_fills, DAY, equity.index
            ),
            "funding_drag_bps_per_day": trailing_sum(inputs.funding_paid, DAY) / equity * 1e4,
            "signal_mismatch_pct": mismatch,
        },
        index=equity.index,
    )


def sleeve_indicators(inputs: GuardInputs, sleeve: str) -> pd.DataFrame:
    """Indicators 9-12 of one sleeve at every bar."""
    equity = inputs.equity.astype(float)
    cumulative_pnl = inputs.sleeve_pnl[sleeve].fillna(0.0).cumsum()
    pnl_30d = cumulative_pnl.to_numpy() - np.nan_to_num(value_days_ago(cumulative_pnl, 30))
    base = value_days_ago(equity, 30)
    return pd.DataFrame(
        {
            "sleeve_mdd_pct": drawdown_pct(
                inputs.sleeve_equity[sleeve], tuple(inputs.sleeve_resets.get(sleeve, ()))
            ),
            "sleeve_contribution_30d_pct": pnl_30d / base * 100.0,
            "position_state": inputs.position_state[sleeve].astype(float),
            "trades_24h": trailing_sum(inputs.trades[sleeve].reindex(equity.index), DAY),
        },
        index=equity.index,
    )


def restrict(
    inputs: GuardInputs, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> GuardInputs:
    """The inputs restricted to ``[start, end)``, as one epoch (no drawdown resets)."""

    def keep(data: pd.Series | pd.DataFrame) -> np.ndarray:
        index = pd.DatetimeIndex(data.index)
        mask = np.ones(len(index), dtype=bool)
        if start is not None:
            mask &= np.asarray(index >= start)
        if end is not None:
            mask &= np.asarray(index < end)
        return mask

    def cut(data: pd.Series) -> pd.Series:
        return data.loc[keep(data)]

    def cut_frame(data: pd.DataFrame) -> pd.DataFrame:
        return data.loc[keep(data)]

    mismatch = inputs.signal_mismatch_pct
    return replace(
        inputs,
        equity=cut(inputs.equity),
        sleeve_pnl=cut_frame(inputs.sleeve_pnl),
        sleeve_equity=cut_frame(inputs.sleeve_equity),
        position_state=cut_frame(inputs.position_state),
        turnover=cut(inputs.turnover),
        trades=cut_frame(inputs.trades),
        funding_paid=cut(inputs.funding_paid),
        slippage_bps_sum=cut(inputs.slippage_bps_sum),
        slippage_fills=cut(inputs.slippage_fills),
        signal_mismatch_pct=None if mismatch is None else cut(mismatch),
        drawdown_resets=(),
    )


def compute_indicators(inputs: GuardInputs) -> IndicatorFrames:
    """All twelve indicators, portfolio and per sleeve, at every bar, epoch by epoch."""
    bounds: list[pd.Timestamp | None] = [None, *sorted(inputs.drawdown_resets), None]
    epochs = [restrict(inputs, start, end) for start, end in itertools.pairwise(bounds)]
    epochs = [e for e in epochs if len(e.equity)] or [inputs]
    sleeves = list(inputs.sleeve_equity.columns)
    return IndicatorFrames(
        portfolio=pd.concat([portfolio_indicators(e) for e in epochs]),
        sleeves={s: pd.concat([sleeve_indicators(e, s) for e in epochs]) for s in sleeves},
    )


# --- the rules over indicator frames (risk_rules.evaluate_rules as it was) ----------


def rule_breach_series(
    values: pd.Series, rule: Rule, eval_times: pd.DatetimeIndex, daily_utc: str
) -> np.ndarray:
    """Whether ``rule`` breaches at each evaluation time, consecutive days included."""
    at_eval = values.reindex(eval_times).to_numpy(dtype=float)
    if rule.consecutive_days <= 1:
        return breaches(at_eval, rule)
    checks = daily_check_times(pd.DatetimeIndex(values.index), daily_utc)
    daily = values.reindex(checks).to_numpy(dtype=float)
    streak = streak_lengths(breaches(daily, rule), ~np.isnan(daily))
    holds = pd.Series(streak >= rule.consecutive_days, index=checks)
    position = checks.searchsorted(eval_times, side="right") - 1
    result = np.zeros(len(eval_times), dtype=bool)
    seen = position >= 0
    result[seen] = holds.to_numpy()[position[seen]]
    return result


def evaluate_rules(
    frames: IndicatorFrames,
    rules: Sequence[Rule],
    eval_times: pd.DatetimeIndex,
    *,
    daily_utc: str,
    near_threshold_pct: float,
) -> DecisionTable:
    """Evaluate every rule (per sleeve when sleeve-scoped) at every evaluation time."""
    keys = rule_keys(rules, frames.sleeves)
    n = len(eval_times)
    breach = np.zeros((len(keys), n), dtype=bool)
    near = np.zeros((len(keys), n), dtype=bool)
    values = np.full((len(keys), n), np.nan)
    for k, (rule, sleeve) in enumerate(keys):
        series = frames.series(rule.indicator, sleeve)
        at_eval = series.reindex(eval_times).to_numpy(dtype=float)
        values[k] = at_eval
        breach[k] = rule_breach_series(series, rule, eval_times, daily_utc)
        close = near_threshold(at_eval, rule, near_threshold_pct) | breaches(at_eval, rule)
        near[k] = close & ~breach[k]
    return decision_table(eval_times, keys, values, breach, near)


# --- the per-action replay (guard_replay.py as it was) ------------------------------


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


def reference_replay(
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


# --- the comparison the tests make -----------------------------------------------------


def assert_same_replay(new: ReplayResult, old: ReplayResult) -> None:
    """The same actions, triggers (time, rule, sleeve, action, severity; values to 1e-9),
    guarded and unguarded equity (to 1e-9), multipliers and decisions at every evaluation."""

    def triggers(result: ReplayResult) -> list[tuple[object, ...]]:
        return [(h.at, h.rule_id, h.sleeve, h.action, h.severity, h.value) for h in result.triggers]

    def actions(result: ReplayResult) -> list[tuple[object, ...]]:
        return [(a.at, a.kind, a.sleeve, a.multipliers, a.reason) for a in result.actions]

    assert actions(new) == actions(old)
    assert same(triggers(new), triggers(old))
    for run in ("guarded", "unguarded"):
        ours, theirs = getattr(new, run).equity, getattr(old, run).equity
        assert ours.index.equals(theirs.index)
        assert same(ours.tolist(), theirs.tolist()), run
    assert new.multipliers.equals(old.multipliers)
    assert new.eval_times.equals(old.eval_times)
    for matrix in ("breach_matrix", "near_matrix", "action_rank", "severity_rank"):
        assert np.array_equal(getattr(new.decisions, matrix), getattr(old.decisions, matrix))
    assert same(new.decisions.values.tolist(), old.decisions.values.tolist())
