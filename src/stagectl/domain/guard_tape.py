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

import itertools
from bisect import bisect_right
from collections.abc import Mapping, Sequence

import numpy as np

from stagectl.config.risk_guard import Rule
from stagectl.domain.backtest import SLEEVE_SERIES, FloatArray, Market, Stretch, advance
from stagectl.domain.risk_indicators import BLOCK, GuardArrays, IndicatorTape
from stagectl.domain.risk_rules import RuleKey, breaches, streak_lengths

IntArray = np.ndarray
MOVING_ACTIONS = ("FLATTEN_ALL", "REDUCE_RISK_50", "DISABLE_SLEEVE")
"""The actions that change positions: the only rules the replay's state machine reads."""


FLOWS = (
    "sleeve_pnl",
    "turnover",
    "trades",
    "funding_paid",
    "slippage_bps_sum",
    "slippage_fills",
)
"""The flow inputs :func:`guard_flows` gives, (bars, sleeves) or (bars,)."""


def guard_flows(
    *,
    equity_before: FloatArray,
    net: FloatArray,
    turnover: FloatArray,
    slip_cur: FloatArray,
    funding_cur: FloatArray,
    weights: FloatArray,
    into: Mapping[str, FloatArray] | None = None,
) -> dict[str, FloatArray]:
    """The indicators' flow inputs of a backtest's bars (``guard_replay.guard_inputs``).

    A backtest trades exactly its position changes, each sleeve's as one fill at the
    bar's open: the turnover of a bar is ``sum_i w_i |delta position_i| / sum_i w_i``
    (positions are fractions of the sleeve's ``w_i`` share of the equity before the
    bar), each sleeve that moved is one trade, and each fill's slippage is its slippage
    cost over its traded notional, in bps (the assumed slippage). ``sleeve_pnl`` is
    each sleeve's net return x weight x the equity before the bar. ``into`` (each of
    :data:`FLOWS` with the rows of these bars) receives them, else fresh arrays do.
    Sums across sleeves are added in sleeve order (a row's ``sum``), block by block
    (cache-sized temporaries, the doubles of whole columns).
    """
    bars = len(equity_before)
    shapes = {"sleeve_pnl": np.shape(net), "trades": np.shape(turnover)}
    source = into if into is not None else {n: np.empty(shapes.get(n, bars)) for n in FLOWS}
    flows = {name: source[name] for name in FLOWS}
    with np.errstate(divide="ignore", invalid="ignore"):  # the bps of no fill: not used
        for lo in range(0, bars, BLOCK):
            part = slice(lo, min(lo + BLOCK, bars))
            _flows_block(
                equity_before[part],
                net[part],
                turnover[part],
                slip_cur[part],
                funding_cur[part],
                weights,
                {name: values[part] for name, values in flows.items()},
            )
    return flows


def _flows_block(
    equity_before: FloatArray,
    net: FloatArray,
    turnover: FloatArray,
    slip_cur: FloatArray,
    funding_cur: FloatArray,
    weights: FloatArray,
    out: dict[str, FloatArray],
) -> None:
    """:func:`guard_flows` of a block of bars into ``out`` (its views of the outputs)."""
    traded, funding = out["turnover"], out["funding_paid"]
    bps, fills = out["slippage_bps_sum"], out["slippage_fills"]
    for i, weight in enumerate(weights):  # by sleeve: (bars, 2) loops go 2 at a time
        moved = turnover[:, i] > 0
        sleeve_traded = turnover[:, i] * weight
        notional = sleeve_traded * equity_before
        slipped = moved & (slip_cur[:, i] > 0) & (notional > 0)
        fill_bps = np.divide(slip_cur[:, i], notional, out=notional)
        fill_bps *= 1e4
        fill_bps[~slipped] = 0.0
        np.multiply(net[:, i], weight, out=out["sleeve_pnl"][:, i])
        out["sleeve_pnl"][:, i] *= equity_before
        out["trades"][:, i] = moved
        if i == 0:
            traded[:], funding[:], bps[:], fills[:] = (
                sleeve_traded,
                funding_cur[:, 0],
                fill_bps,
                slipped,
            )
        else:
            traded += sleeve_traded
            funding += funding_cur[:, i]
            bps += fill_bps
            fills += slipped
    traded /= weights.sum() or 1.0


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
        self.changes: list[tuple[int, FloatArray]] = [(0, np.ones(width))]
        """The multipliers as a step function: (first bar, multipliers), by bar."""
        self.held = np.zeros((bars, width))
        self.frontier = 0
        self.epochs = [0]
        """The first bar of each epoch (restart), in order."""
        self.sleeve_resets: dict[str, list[int]] = {s: [] for s in market.names}
        self.inputs = GuardArrays.blank(bars, width)
        self.inputs.position_state[:] = position_state
        self.indicators = IndicatorTape(market.index.as_unit("ns").asi8, market.names)
        self.growth = np.zeros(bars)
        self.run = {name: np.zeros((bars, width)) for name in SLEEVE_SERIES}
        """The kernel's per-sleeve series of the bars computed (``advance`` writes them)."""
        self.sleeve_growth = self.run["sleeve_growth"]
        self.portfolio_net = np.zeros(bars)
        self.equity_before = np.zeros(bars)

    @property
    def bars(self) -> int:
        return self.market.bars

    @property
    def epoch(self) -> int:
        """The first bar of the current epoch."""
        return self.epochs[-1]

    def scale_from(self, bar: int, multipliers: Sequence[float]) -> None:
        """Every sleeve's multiplier from ``bar`` on (the bars from it are recomputed)."""
        kept = [change for change in self.changes if change[0] < bar]
        self.changes = [*kept, (bar, np.asarray(multipliers, dtype=float))]
        self.frontier = min(self.frontier, bar)

    def multipliers(self, start: int = 0, end: int | None = None) -> FloatArray:
        """The (bars, sleeves) multipliers over ``[start, end)``."""
        end = self.bars if end is None else end
        out = np.empty((max(end - start, 0), len(self.market.names)))
        for lo, hi, values in self._steps(start, end):
            out[lo - start : hi - start] = values
        return out

    def _steps(self, start: int, end: int) -> list[tuple[int, int, FloatArray]]:
        """The multipliers' steps over ``[start, end)``: (first bar, end, multipliers)."""
        changes = self.changes
        k = max(bisect_right(changes, start, key=lambda change: change[0]) - 1, 0)
        steps = []
        while k < len(changes) and changes[k][0] < end:
            until = changes[k + 1][0] if k + 1 < len(changes) else self.bars
            lo, hi = max(changes[k][0], start), min(until, end)
            if lo < hi:
                steps.append((lo, hi, changes[k][1]))
            k += 1
        return steps

    def restart(self, bar: int) -> None:
        """A new epoch from ``bar``: the bars before it finish the current one (computed
        with the bars after it, by the next ``advance_to``)."""
        if bar > self.epochs[-1]:
            self.epochs.append(bar)

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
        # held[k] = target[k - delay] x its multiplier (0 before)
        for lo, hi, values in self._steps(first - delay, end - delay):
            np.multiply(self.targets[lo:hi], values, out=self.held[lo + delay : hi + delay])
        before = start - 1
        stretch = advance(
            self.market,
            self.held,
            start,
            end,
            growth_before=self.growth[before] if start else 1.0,
            sleeve_growth_before=self.sleeve_growth[before] if start else None,
            into=self.run,
        )
        self._store(stretch, start, end)
        epochs = self.epochs  # the range's part in each epoch, with that epoch's start
        k = bisect_right(epochs, start) - 1
        cuts = [start, *(bar for bar in epochs[k + 1 :] if bar < end), end]
        for epoch, (lo, hi) in zip(epochs[k:], itertools.pairwise(cuts), strict=False):
            self.indicators.compute(
                self.inputs, lo, hi, epoch=epoch, sleeve_resets=self.sleeve_resets
            )
        self.frontier = end

    def _store(self, stretch: Stretch, start: int, end: int) -> None:
        self.growth[start:end] = stretch.growth
        self.portfolio_net[start:end] = stretch.portfolio_net
        self.equity_before[start:end] = stretch.equity_before
        market, inputs = self.market, self.inputs
        np.multiply(market.initial_equity, stretch.growth, out=inputs.equity[start:end])
        shares = market.initial_equity * market.weights  # (initial x weight) x growth
        np.multiply(shares, stretch.sleeve_growth, out=inputs.sleeve_equity[start:end])
        guard_flows(
            equity_before=stretch.equity_before,
            net=stretch.net,
            turnover=stretch.turnover,
            slip_cur=stretch.slip_cur,
            funding_cur=stretch.funding_cur,
            weights=market.weights,
            into={name: getattr(inputs, name)[start:end] for name in FLOWS},
        )

    def finished(self) -> Stretch:
        """The whole run, for ``backtest.assemble``: every bar computed, its ranges' series
        put together (the doubles of one pass of the kernel over all the bars)."""
        self.advance_to(self.bars)
        return Stretch(
            start=0,
            portfolio_net=self.portfolio_net,
            growth=self.growth,
            equity_before=self.equity_before,
            **self.run,
        )


class ScanRules:
    """The position-moving rules at evaluation positions, from the tape (module
    docstring). ``eval_bars`` are the evaluation times' bars, ``check_bars`` the daily
    checks' bars, both sorted. Breaches are kept once judged, until the tape moves back
    before them."""

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
        self.groups: dict[tuple[str, str | None], list[int]] = {}
        """The keys of each action (of each sleeve, and of every sleeve under None)."""
        for k, (rule, sleeve) in enumerate(self.keys):
            for scope in {None, sleeve}:
                self.groups.setdefault((rule.action, scope), []).append(k)
        self.epoch_check = 0
        self.streaks = {
            k: np.zeros(len(check_bars), dtype=np.int64)
            for k, (rule, _) in enumerate(self.keys)
            if rule.consecutive_days > 1
        }
        self.counted = dict.fromkeys(self.streaks, 0)
        self.breaches = np.zeros((len(self.keys), len(eval_bars)), dtype=bool)
        self.judged = [0] * len(self.keys)
        """Per key, the evaluation positions before it are judged (or never asked again)."""

    def known(self) -> int:
        """The evaluation positions whose bars the tape has computed."""
        return int(np.searchsorted(self.eval_bars, self.tape.frontier))

    def rewound(self) -> None:
        """The tape's frontier moved back: forget what was judged from it on."""
        first = int(np.searchsorted(self.check_bars, self.tape.frontier))
        for k in self.counted:
            self.counted[k] = min(self.counted[k], first)
        known = self.known()
        self.judged = [min(judged, known) for judged in self.judged]

    def restarted(self) -> None:
        """A new epoch: streaks count from its first daily check."""
        self.epoch_check = int(np.searchsorted(self.check_bars, self.tape.epoch))
        for k in self.counted:
            self.counted[k] = self.epoch_check

    def values(self, k: int, lo: int, hi: int) -> FloatArray:
        """Key ``k``'s indicator at the evaluation positions ``[lo, hi)``."""
        row = self.rows[k]
        if row is None:
            return np.full(hi - lo, np.nan)
        return np.asarray(self.tape.indicators.values[row, self.eval_bars[lo:hi]])

    def value(self, k: int, i: int) -> float:
        """Key ``k``'s indicator at the evaluation position ``i``."""
        return float(self.values(k, i, i + 1)[0])

    def mask(self, action: str, lo: int, hi: int, sleeve: str | None = None) -> np.ndarray:
        """Whether any key of ``action`` (of ``sleeve``, when given) breaches, over the
        evaluation positions ``[lo, hi)``."""
        keys = self.groups.get((action, sleeve), [])
        for k in keys:
            self.breach(k, lo, hi)
        return np.asarray(self.breaches[keys, lo:hi].any(axis=0))

    def breach(self, k: int, lo: int, hi: int) -> np.ndarray:
        """Whether key ``k`` breaches at the evaluation positions ``[lo, hi)`` (``lo`` never
        below an earlier call's: the replay only moves forward between actions)."""
        start = max(self.judged[k], lo)
        if start < hi:
            self.breaches[k, start:hi] = self._judge(k, start, hi)
            self.judged[k] = hi
        return self.breaches[k, lo:hi]

    def _judge(self, k: int, lo: int, hi: int) -> np.ndarray:
        rule = self.keys[k][0]
        if rule.consecutive_days <= 1:
            return breaches(self.values(k, lo, hi), rule)
        latest = self.latest_check[lo:hi]
        seen = latest >= self.epoch_check
        holds = np.zeros(hi - lo, dtype=bool)
        if seen.any():
            streak = self._streaks(k, rule, int(latest[seen].max()) + 1)
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
