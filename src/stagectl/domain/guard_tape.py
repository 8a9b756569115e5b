"""The guarded run of ``risk-guard --replay``, advanced range by range.

The guard's actions change the sleeves' multipliers from a bar on, and the guard judges
the equity they produce, so the guarded run is known only up to the next action. The
tape holds the whole run as arrays and a frontier: the bars before it are computed, with
the multipliers in force. ``advance_to(end)`` computes ``[frontier, end)`` once: the
backtest kernel (``backtest.advance``), the guard's inputs (:func:`guard_flows`), the
twelve indicators (``risk_indicators.IndicatorTape``), each carrying in what it needs
from the bars before (positions, running products, peaks, running sums). An action at
bar ``b`` moves the frontier back to ``b``: the bars before it stay as they are (a
position changes one bar after its multiplier, ``signal_delay >= 1``), the bars from it
on are computed again when the replay next needs them. Each bar's values are those one
pass over the finished run gives, bit for bit.

:class:`ScanRules` judges the rules that move positions (FLATTEN_ALL, REDUCE_RISK_50,
DISABLE_SLEEVE) at evaluation times from the tape's values, as the replay's guard saw
them while trading: a consecutive-day streak counts the daily checks of the current
epoch (since the last restart).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stagectl.config.risk_guard import Rule
from stagectl.domain.backtest import FloatArray, Market, Stretch, advance
from stagectl.domain.risk_indicators import GuardArrays, IndicatorTape
from stagectl.domain.risk_rules import RuleKey, breaches, streak_lengths

IntArray = np.ndarray
MOVING_ACTIONS = ("FLATTEN_ALL", "REDUCE_RISK_50", "DISABLE_SLEEVE")
"""The actions that change positions: the only rules the replay's state machine reads."""


def guard_flows(
    *,
    equity_before: FloatArray,
    net: FloatArray,
    turnover: FloatArray,
    slip_cur: FloatArray,
    funding_cur: FloatArray,
    weights: FloatArray,
) -> dict[str, FloatArray]:
    """The indicators' flow inputs of a backtest's bars (``guard_replay.guard_inputs``).

    A backtest trades exactly its position changes, each sleeve's as one fill at the
    bar's open: the turnover of a bar is ``sum_i w_i |delta position_i| / sum_i w_i``
    (positions are fractions of the sleeve's ``w_i`` share of the equity before the
    bar), each sleeve that moved is one trade, and each fill's slippage is its slippage
    cost over its traded notional, in bps (the assumed slippage). ``sleeve_pnl`` is
    each sleeve's net return x weight x the equity before the bar.
    """
    notional = turnover * weights * equity_before[:, None]
    moved = turnover > 0
    slipped = moved & (slip_cur > 0) & (notional > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fill_bps = np.where(slipped, slip_cur / notional * 1e4, 0.0)
    traded = turnover * weights
    portfolio = traded[:, 0]
    for i in range(1, traded.shape[1]):
        portfolio = portfolio + traded[:, i]
    return {
        "sleeve_pnl": net * weights * equity_before[:, None],
        "turnover": portfolio / (weights.sum() or 1.0),
        "trades": moved.astype(float),
        "funding_paid": funding_cur.sum(axis=1),
        "slippage_bps_sum": fill_bps.sum(axis=1),
        "slippage_fills": slipped.sum(axis=1).astype(float),
    }


class GuardedTape:
    """The guarded run and its indicators up to ``frontier`` (module docstring).

    ``targets`` are the sleeves' unscaled targets (bars, sleeves); ``position_state``
    the strategy's state per sleeve (the unguarded positions' signs: what a healthy
    strategy holds, whatever the guard did).
    """

    def __init__(
        self,
        market: Market,
        targets: FloatArray,
        position_state: FloatArray,
        *,
        signal_delay: int,
    ) -> None:
        bars, width = targets.shape
        self.market = market
        self.targets = targets
        self.delay = signal_delay
        self.multipliers = np.ones((bars, width))
        self.held = np.zeros((bars, width))
        self.frontier = 0
        self.epoch = 0
        self.sleeve_resets: dict[str, list[int]] = {s: [] for s in market.names}
        self.inputs = GuardArrays.blank(bars, width)
        self.inputs.position_state[:] = position_state
        self.indicators = IndicatorTape(market.index.as_unit("ns").asi8, market.names)
        self.growth = np.zeros(bars)
        self.sleeve_growth = np.zeros((bars, width))

    @property
    def bars(self) -> int:
        return self.market.bars

    def scale_from(self, bar: int, multipliers: Sequence[float]) -> None:
        """Every sleeve's multiplier from ``bar`` on (the bars from it are recomputed)."""
        self.multipliers[bar:] = np.asarray(multipliers, dtype=float)
        self.frontier = min(self.frontier, bar)

    def restart(self, bar: int) -> None:
        """A new epoch from ``bar``: the bars before it finish the current one."""
        self.advance_to(bar)
        self.epoch = bar

    def reset_sleeve(self, sleeve: str, bar: int) -> None:
        """The sleeve's drawdown restarts at ``bar`` (its re-enable)."""
        self.sleeve_resets[sleeve].append(bar)
        self.frontier = min(self.frontier, bar)

    def advance_to(self, end: int) -> None:
        """Compute the bars ``[frontier, end)``."""
        start = self.frontier
        if end <= start:
            return
        delay, first = self.delay, max(start, self.delay)
        if end > first:  # held[k] = target[k - delay] x its multiplier (0 before)
            source = slice(first - delay, end - delay)
            self.held[first:end] = self.targets[source] * self.multipliers[source]
        before = start - 1
        stretch = advance(
            self.market,
            self.held,
            start,
            end,
            growth_before=self.growth[before] if start else 1.0,
            sleeve_growth_before=self.sleeve_growth[before] if start else None,
        )
        self._store(stretch, start, end)
        self.indicators.compute(
            self.inputs, start, end, epoch=self.epoch, sleeve_resets=self.sleeve_resets
        )
        self.frontier = end

    def _store(self, stretch: Stretch, start: int, end: int) -> None:
        self.growth[start:end] = stretch.growth
        self.sleeve_growth[start:end] = stretch.sleeve_growth
        market, inputs = self.market, self.inputs
        inputs.equity[start:end] = market.initial_equity * stretch.growth
        inputs.sleeve_equity[start:end] = (
            market.initial_equity * market.weights * stretch.sleeve_growth
        )
        flows = guard_flows(
            equity_before=stretch.equity_before,
            net=stretch.net,
            turnover=stretch.turnover,
            slip_cur=stretch.slip_cur,
            funding_cur=stretch.funding_cur,
            weights=market.weights,
        )
        for name, values in flows.items():
            getattr(inputs, name)[start:end] = values

    def finished(self) -> Stretch:
        """The whole run, for ``backtest.assemble``: every bar computed, then the kernel
        once more over all of them (the same doubles as its ranges, kept whole only
        now: the ranges keep what the indicators need)."""
        self.advance_to(self.bars)
        return advance(self.market, self.held, 0, self.bars)


class ScanRules:
    """The position-moving rules at evaluation positions, from the tape (module
    docstring). ``eval_bars`` are the evaluation times' bars, ``check_bars`` the daily
    checks' bars, both sorted."""

    def __init__(
        self,
        tape: GuardedTape,
        keys: Sequence[RuleKey],
        eval_bars: IntArray,
        check_bars: IntArray,
    ) -> None:
        self.tape = tape
        self.keys = tuple(keys)
        self.eval_bars = eval_bars
        self.check_bars = check_bars
        self.latest_check = np.searchsorted(check_bars, eval_bars, side="right") - 1
        self.rows = [tape.indicators.rows.get((rule.indicator, sleeve)) for rule, sleeve in keys]
        self.epoch_check = 0
        self.streaks = {
            k: np.zeros(len(check_bars), dtype=np.int64)
            for k, (rule, _) in enumerate(self.keys)
            if rule.consecutive_days > 1
        }
        self.counted = dict.fromkeys(self.streaks, 0)

    def known(self) -> int:
        """The evaluation positions whose bars the tape has computed."""
        return int(np.searchsorted(self.eval_bars, self.tape.frontier))

    def rewound(self) -> None:
        """The tape's frontier moved back: forget the streaks of the checks from it on."""
        first = int(np.searchsorted(self.check_bars, self.tape.frontier))
        for k in self.counted:
            self.counted[k] = min(self.counted[k], first)

    def restarted(self) -> None:
        """A new epoch: streaks count from its first daily check."""
        self.epoch_check = int(np.searchsorted(self.check_bars, self.tape.epoch))
        for k in self.counted:
            self.counted[k] = self.epoch_check

    def values(self, k: int, positions: IntArray) -> FloatArray:
        row = self.rows[k]
        if row is None:
            return np.full(len(positions), np.nan)
        return np.asarray(self.tape.indicators.values[row, self.eval_bars[positions]])

    def breach(self, k: int, lo: int, hi: int) -> np.ndarray:
        """Whether key ``k`` breaches at the evaluation positions ``[lo, hi)``."""
        rule = self.keys[k][0]
        if rule.consecutive_days <= 1:
            return breaches(self.values(k, np.arange(lo, hi)), rule)
        latest = self.latest_check[lo:hi]
        seen = latest >= self.epoch_check
        if not seen.any():
            return np.zeros(hi - lo, dtype=bool)
        streak = self._streaks(k, rule, int(latest[seen].max()) + 1)
        holds = np.zeros(hi - lo, dtype=bool)
        holds[seen] = streak[latest[seen]] >= rule.consecutive_days
        return holds

    def _streaks(self, k: int, rule: Rule, upto: int) -> IntArray:
        """Key ``k``'s streaks counted through the daily check ``upto - 1``."""
        streak, start = self.streaks[k], self.counted[k]
        if upto > start:
            row = self.rows[k]
            bars = self.check_bars[start:upto]
            daily = (
                np.full(len(bars), np.nan)
                if row is None
                else self.tape.indicators.values[row, bars]
            )
            carry = int(streak[start - 1]) if start > self.epoch_check else 0
            streak[start:upto] = streak_lengths(breaches(daily, rule), ~np.isnan(daily), carry)
            self.counted[k] = upto
        return streak
