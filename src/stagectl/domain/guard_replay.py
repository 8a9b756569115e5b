"""Replay the strategy with the risk guard obeyed (guarded) and ignored (unguarded).

The guard is evaluated at every evaluation time (each bar, or each daily check);
its actions change the sleeves' position multipliers from that bar on, which
changes the guarded equity the later evaluations see. The replay advances once over
the bars (``domain/guard_tape.py``): the guarded backtest and its indicators are
computed ahead of the evaluations in ranges that double in length until the next
action shows; an action moves the tape back to its bar, and the bars after it are
computed again with the new multipliers, carrying in the equity, positions, peaks and
running sums of the bars before. So the work is one pass over the bars plus, per
action, the bars computed past it (at most about the distance to the next action),
never the history before it. The triggers are the rising edges of every rule over the
finished run, judged once at the end.

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

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stagectl.config.risk_guard import RiskGuardConfig
from stagectl.domain.backtest import (
    BacktestResult,
    SleeveSpec,
    assemble,
    held_of,
    market_of,
    simulate,
)
from stagectl.domain.directives import (
    Review,
    further_past,
    recovered_multiplier,
    review_reduce,
    review_sleeve,
)
from stagectl.domain.guard_tape import MOVING_ACTIONS, GuardedTape, ScanRules, guard_flows
from stagectl.domain.restart import (
    DRAWDOWN_WINDOW,
    SHARPE_LONG_DAYS,
    SHARPE_SHORT_DAYS,
    SLEEVE_SHARPE_DAYS,
    trailing_drawdown_pct,
)
from stagectl.domain.risk_indicators import GuardInputs
from stagectl.domain.risk_rules import (
    ACTION_RANK,
    DecisionTable,
    RuleHit,
    daily_check_mask,
    daily_check_times,
    evaluate_values,
    rule_keys,
)
from stagectl.domain.window_sums import rolling_sharpe_values

HOURS_PER_YEAR = 8760.0
FIRST_RANGE_BARS = 256
"""The bars computed past the frontier when the next action is not in sight yet; each
further range doubles, so finding an action d bars away computes fewer than 2d + 256."""


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
    """The risk indicators' inputs from a backtest (``state``: unscaled positions); the
    flows as ``guard_tape.guard_flows`` defines them."""
    equity = result.equity
    index, columns = equity.index, result.positions.columns
    weights = np.array([result.weights[c] for c in columns], dtype=float)
    flows = guard_flows(
        equity_before=equity.shift(1).fillna(result.initial_equity).to_numpy(),
        net=result.sleeve_net_returns.to_numpy(),
        turnover=result.sleeve_turnover.to_numpy(),
        slip_cur=result.sleeve_slippage.to_numpy(),
        funding_cur=result.sleeve_funding.to_numpy(),
        weights=weights,
    )

    def frame(values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(values, index=index, columns=columns)

    return GuardInputs(
        equity=equity,
        sleeve_pnl=frame(flows["sleeve_pnl"]),
        sleeve_equity=result.sleeve_equity,
        position_state=state,
        turnover=pd.Series(flows["turnover"], index=index),
        trades=frame(flows["trades"]),
        funding_paid=pd.Series(flows["funding_paid"], index=index),
        slippage_bps_sum=pd.Series(flows["slippage_bps_sum"], index=index),
        slippage_fills=pd.Series(flows["slippage_fills"], index=index),
        **extra,  # type: ignore[arg-type]
    )


def evaluation_times(index: pd.DatetimeIndex, mode: str, daily_utc: str) -> pd.DatetimeIndex:
    """Every bar (``hourly``) or the daily check times (``daily``)."""
    if mode == "hourly":
        return index
    if mode == "daily":
        return daily_check_times(index, daily_utc)
    raise ValueError(f"evaluation mode must be hourly or daily, got {mode!r}")


def _first(mask: np.ndarray) -> int | None:
    i = int(mask.argmax()) if mask.size else 0  # argmax stops at the first True
    return i if mask.size and mask[i] else None


@dataclass(frozen=True)
class _Shadow:
    """The unguarded strategy's health at each evaluation time, for restart and re-enable
    decisions (``domain/restart.py``: rolling ``sqrt(8760) * mean / std`` of hourly
    returns, here from running sums; the 20-day one of the equity's returns, as the
    guard's indicator)."""

    sharpe_20d: np.ndarray
    sharpe_60d: np.ndarray
    drawdown_pct: np.ndarray
    sleeve_sharpe_30d: dict[str, np.ndarray]
    _reenables: dict[tuple[str, int], tuple[list[int], Iterator[int]]] = field(default_factory=dict)

    def reenable(
        self,
        clock: Sequence[int],
        sleeve: str,
        due: pd.Timestamp,
        config: RiskGuardConfig,
        start: int,
    ) -> int | None:
        """The first eval position at or after ``start`` of a review of a sleeve disabled
        until ``due`` that finds it healthy (``directives.review_sleeve`` on its 30-day
        Sharpe), or None. The reviews and the shadow do not change, so each disable's
        reviews are judged once, as far as they are asked for."""
        key = (sleeve, due.value)
        if key not in self._reenables:
            self._reenables[key] = ([], self._healthy(clock, sleeve, due, config))
        found, rest = self._reenables[key]
        while not found or found[-1] < start:
            if (i := next(rest, None)) is None:
                return None
            found.append(i)
        return found[bisect_left(found, start)]

    def _healthy(
        self, clock: Sequence[int], sleeve: str, due: pd.Timestamp, config: RiskGuardConfig
    ) -> Iterator[int]:
        disable = config.actions.disable_sleeve
        period = pd.Timedelta(days=disable.reevaluate_after_days)
        sharpe = self.sleeve_sharpe_30d[sleeve]
        minimum = disable.reenable_backtest_sharpe_30d_min
        for i in _reviews(clock, due, period):
            if review_sleeve(float(sharpe[i]), minimum) == Review.RECOVERED:
                yield i


def _shadow(unguarded: BacktestResult, eval_bars: np.ndarray) -> _Shadow:
    equity = unguarded.equity.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.concatenate(([np.nan], equity[1:] / equity[:-1] - 1.0))
    day = 24

    def sharpe(values: np.ndarray, days: int) -> np.ndarray:
        return np.asarray(rolling_sharpe_values(values, days * day, HOURS_PER_YEAR)[eval_bars])

    drawdown = trailing_drawdown_pct(unguarded.equity, DRAWDOWN_WINDOW).to_numpy()
    return _Shadow(
        sharpe_20d=sharpe(returns, SHARPE_SHORT_DAYS),
        sharpe_60d=sharpe(unguarded.net_returns.to_numpy(), SHARPE_LONG_DAYS),
        drawdown_pct=drawdown[eval_bars],
        sleeve_sharpe_30d={
            s: sharpe(unguarded.sleeve_net_returns[s].to_numpy(), SLEEVE_SHARPE_DAYS)
            for s in unguarded.sleeve_net_returns.columns
        },
    )


def _restartable(shadow: _Shadow, config: RiskGuardConfig) -> np.ndarray:
    """The eval positions where the restart conditions hold on the strategy itself (the
    unguarded shadow): 20-day Sharpe, 60-day Sharpe and 60-day drawdown."""
    restart = config.restart_conditions
    with np.errstate(invalid="ignore"):
        ok = (
            (shadow.sharpe_20d > restart.sharpe_20d_min)
            & (shadow.sharpe_60d > restart.backtest_sharpe_60d_min)
            & (shadow.drawdown_pct < restart.max_mdd_pct)
        )
    return np.flatnonzero(ok)


def _restart_at(
    clock: Sequence[int],
    state: _State,
    restartable: np.ndarray,
    start: int,
    config: RiskGuardConfig,
) -> tuple[int, str, str | None, str] | None:
    """The first eval position at or after ``start`` where a flattened book may restart
    (``restartable``: where the conditions hold).

    Not before the post-mortem deadline (``post_mortem_within_h`` after the
    flatten): the runbook restarts only once the cause is understood.
    """
    earliest = state.flattened_at + pd.Timedelta(  # type: ignore[operator]
        hours=config.actions.flatten_all.post_mortem_within_h
    )
    first = max(start, bisect_left(clock, earliest.value))
    k = int(np.searchsorted(restartable, first))
    if k == len(restartable):
        return None
    return int(restartable[k]), "RESTART", None, "restart conditions hold (human sign-off assumed)"


def _reviews(clock: Sequence[int], due: pd.Timestamp, period: pd.Timedelta) -> Iterator[int]:
    """The eval positions of the reviews from ``due`` on (``clock``: the evaluation times
    in nanoseconds, sorted): the first evaluation at or after each due time; the next is due one
    period after that review (as the live guard, which records a review at the evaluation
    that makes it)."""
    at, step = due.value, period.value
    while (i := bisect_left(clock, at)) < len(clock):
        yield i
        at = clock[i] + step


def _reduce_issue(rules: ScanRules, i: int) -> tuple[str, str | None, float] | None:
    """The first REDUCE_RISK_50 rule breaching at eval position ``i`` (the one that issues
    the directive) and its scaled value."""
    for k, (rule, sleeve) in enumerate(rules.keys):
        if rule.action == "REDUCE_RISK_50" and rules.breach(k, i, i + 1)[0]:
            return rule.id, sleeve, rules.value(k, i) * rule.scale
    return None


def _worsened(rules: ScanRules, i: int, issue: tuple[str, str | None, float] | None) -> bool:
    if issue is None:
        return False
    rule_id, sleeve, issued = issue
    for k, (rule, s) in enumerate(rules.keys):
        if rule.id == rule_id and s == sleeve and rules.breach(k, i, i + 1)[0]:
            return further_past(rule.op, rules.value(k, i) * rule.scale, issued)
    return False


def _reduce_review(
    rules: ScanRules,
    span: tuple[int, int],
    clock: Sequence[int],
    state: _State,
    reduce: np.ndarray,
    config: RiskGuardConfig,
) -> tuple[int, str, str] | None:
    """The first review in the eval positions ``span`` that changes the reduced book:
    RECOVER or an escalation to FLATTEN_ALL (earlier reviews kept it); reviews past the
    span are not known yet."""
    if state.reduce_review_at is None:
        return None
    lo, hi = span
    period = pd.Timedelta(hours=config.actions.reduce_risk_50.reevaluate_after_h)
    for i in _reviews(clock, state.reduce_review_at, period):
        if i < lo:
            continue
        if i >= hi:
            return None
        breaching = bool(reduce[i - lo])
        worsened = breaching and _worsened(rules, i, state.reduce_issue)
        review = review_reduce(state.reduce_level, breaching=breaching, worsened=worsened)
        if review.outcome == Review.RECOVERED:
            return i, "RECOVER", "review after 24 h: REDUCE rules clear"
        if review.outcome == Review.WORSENED:
            why = "review after 24 h: REDUCE rule worse than when it fired (escalated)"
            return i, "FLATTEN_ALL", why
    return None


def _next_action(
    rules: ScanRules,
    span: tuple[int, int],
    clock: Sequence[int],
    state: _State,
    shadow: _Shadow,
    start: int,
    config: RiskGuardConfig,
) -> tuple[int, str, str | None, str] | None:
    """The earliest state change at or after eval position ``start`` (book not flattened)
    among the eval positions ``span`` (from ``start - 1`` to what the tape has computed);
    a sleeve's re-enable, read from the unguarded shadow, may lie beyond them.

    A review may also act at ``start - 1``, the position of the last action: the live guard
    makes every review that is due at one evaluation, so one action there (a RECOVER, say)
    must not push a sleeve's re-enable, due at the same time, a whole period later.
    """
    lo, hi = span
    skip = start - lo  # the positions before ``start``: for the reviews alone
    candidates: list[tuple[int, int, str, str | None, str]] = []

    def offer(mask: np.ndarray, priority: int, kind: str, sleeve: str | None, why: str) -> None:
        i = _first(mask[skip:])
        if i is not None:
            candidates.append((start + i, priority, kind, sleeve, why))

    offer(rules.mask("FLATTEN_ALL", lo, hi), 0, "FLATTEN_ALL", None, "FLATTEN_ALL rule")
    reduce = rules.mask("REDUCE_RISK_50", lo, hi)
    if state.reduce_level >= 1.0:
        offer(reduce, 1, "REDUCE_RISK_50", None, "REDUCE_RISK_50 rule")
    else:
        found = _reduce_review(rules, span, clock, state, reduce, config)
        if found is not None:
            candidates.append((found[0], 1, found[1], None, found[2]))
    for sleeve in state.sleeves:
        if sleeve in state.disabled:
            at = shadow.reenable(clock, sleeve, state.disabled[sleeve], config, lo)
            if at is not None:
                why = "30-day sleeve Sharpe recovered"
                candidates.append((at, 2, "ENABLE_SLEEVE", sleeve, why))
        else:
            mask = rules.mask("DISABLE_SLEEVE", lo, hi, sleeve)
            offer(mask, 2, "DISABLE_SLEEVE", sleeve, "DISABLE_SLEEVE rule")
    if not candidates:
        return None
    first = min(candidates, key=lambda c: (c[0], c[1]))
    return first[0], first[2], first[3], first[4]


def _search(
    rules: ScanRules,
    clock: Sequence[int],
    state: _State,
    shadow: _Shadow,
    start: int,
    config: RiskGuardConfig,
) -> tuple[int, str, str | None, str] | None:
    """The next action at or after eval position ``start``: the tape computes ranges of
    doubling length past its frontier until one holds it (or the data ends)."""
    tape, length = rules.tape, FIRST_RANGE_BARS
    lo = max(start - 1, 0)
    while True:
        known = rules.known()
        if known >= lo:  # else the tape stops short of the span (a restart's flat bars)
            found = _next_action(rules, (lo, known), clock, state, shadow, start, config)
            if known == len(clock) or (found is not None and found[0] < known):
                return found
        ahead = max(tape.frontier, int(rules.eval_bars[lo]))
        tape.advance_to(min(tape.bars, ahead + length))
        length *= 2


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
    """Each rule's breaches where they start (a breach lasting a week is one trigger),
    in time order, then in rule order."""
    breach = table.breach_matrix
    starts = breach.copy()
    starts[:, 1:] &= ~breach[:, :-1]
    at, key = np.nonzero(starts.T)  # by evaluation, then by rule
    rising = np.unique(at)
    times = dict(zip(rising.tolist(), table.eval_times[rising].to_pydatetime(), strict=True))
    return tuple(table.hit(k, i, times[i]) for i, k in zip(at.tolist(), key.tolist(), strict=True))


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
    }
    market = market_of(sleeves, **kwargs)  # type: ignore[arg-type]
    unguarded = simulate(market, held_of(sleeves, costs.signal_delay))
    index = market.index
    eval_times = evaluation_times(index, evaluation, config.schedule.daily_utc)
    eval_bars = index.get_indexer(eval_times)
    clock = eval_times.as_unit("ns").asi8.tolist()  # bisected a few hundred times a run
    names = tuple(s.symbol for s in sleeves)
    tape = GuardedTape(
        market,
        np.column_stack([s.target.to_numpy(dtype=float) for s in sleeves]),
        np.sign(unguarded.positions.to_numpy()),
        signal_delay=costs.signal_delay,
    )
    keys = rule_keys(config.rules, names)
    times_ns = index.as_unit("ns").asi8
    check_bars = np.flatnonzero(daily_check_mask(times_ns, config.schedule.daily_utc))
    moving = [key for key in keys if key[0].action in MOVING_ACTIONS]
    rules = ScanRules(tape, moving, eval_bars, check_bars)
    shadow = _shadow(unguarded, eval_bars)
    restartable = _restartable(shadow, config)
    state = _State(sleeves=names)
    actions: list[GuardAction] = []
    start = 0
    while len(actions) < max_actions:
        if state.flattened_at is not None:
            found = _restart_at(clock, state, restartable, start, config)
        else:
            found = _search(rules, clock, state, shadow, start, config)
        if found is None:
            break
        i, kind, sleeve, why = found
        at, bar = eval_times[i], int(eval_bars[i])
        if kind == "REDUCE_RISK_50":
            state.reduce_issue = _reduce_issue(rules, i)
        _apply(state, kind, sleeve, at, config)
        if kind == "RESTART":
            tape.restart(bar)
        elif kind == "ENABLE_SLEEVE" and sleeve is not None:
            tape.reset_sleeve(sleeve, bar)
        now = state.multipliers()
        actions.append(GuardAction(at, kind, sleeve, now, why))
        tape.scale_from(bar, [now[s] for s in names])
        rules.rewound()
        if kind == "RESTART":
            rules.restarted()
        start = i + 1
        if progress is not None:
            progress(start, len(eval_times))
    if progress is not None:
        progress(len(eval_times), len(eval_times))
    guarded = assemble(tape.market, tape.held, tape.finished())
    final = evaluate_values(
        [tape.indicators.series(rule.indicator, sleeve) for rule, sleeve in keys],
        keys,
        times_ns,
        eval_times,
        daily_utc=config.schedule.daily_utc,
        near_threshold_pct=config.near_threshold_pct,
    )
    multipliers = pd.DataFrame(tape.multipliers(), index=index, columns=list(names))
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
