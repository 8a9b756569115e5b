"""Vectorised backtest of a portfolio of constant-weight sleeves (seeds 003 and 001).

Timing (docs/strategies.md, "Execution timing", has a worked table). Bars are
labelled by their open time t[k]. ``held[k]`` is the position held from
open[k] to open[k+1] (see ``strategies.held_positions``). Everything stamped
t[k] happens at the instant t[k] = open[k], in this order:

1. the open-to-open price move of bar k-1 is realised on ``held[k-1]``:
   ``gross[k] = held[k-1] * (open[k] / open[k-1] - 1)`` (``gross[0] = 0``);
2. funding settlements with timestamp in (t[k-1], t[k]] are paid on
   ``held[k-1]``: ``funding[k] = held[k-1] * sum(rate)``. A long pays a
   positive rate, a short receives it. A settlement at exactly a bar open is
   paid by the position held before the trade at that open (the order is sent
   after the bar closes, so after the settlement); one strictly inside a bar
   is paid by the position held over that bar. Settlements at or before t[0]
   or after the last open fall outside the backtest;
3. the trade to ``held[k]`` executes at open[k], costing
   ``cost[k] = |held[k] - held[k-1]| * (fee_bps + slippage_bps) * cost_multiplier / 1e4``
   of the equity at that instant (with ``cost_bps``, that bar's fee and slippage).

So ``net[k] = (1 + gross[k] - funding[k]) * (1 - cost[k]) - 1`` and the
equity stamped t[k] is the mark at open[k] after the trade: point-in-time,
known at t[k], no look-ahead. Positions are fractions of sleeve equity
(notional = position x sleeve equity).

Sleeves are constant-weight and rebalanced every bar: the portfolio return is
``sum_i w_i * net_i[k]`` and ``1 - sum_i w_i`` is cash (e.g. BTC "held as
cash": no exposure, no return). The small trades that keep each sleeve exactly
at its weight and each position exactly at its fraction are not charged; this
is the usual vectorised convention and is second order (the runbook itself
rebalances weights weekly). Per-sleeve equity curves are standalone:
``w_i * initial_equity * prod(1 + net_i)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from stagectl.domain.strategies import held_positions
from stagectl.errors import InputError

FloatArray = np.ndarray


@dataclass(frozen=True)
class SleeveSpec:
    """One sleeve: open prices and targets on the common index, weight, funding."""

    symbol: str
    open: pd.Series
    target: pd.Series
    weight: float
    funding: pd.Series | None = None
    last_bar: pd.Timestamp | None = None
    """The last bar of a symbol whose data ends before the period does (delisted): its
    position is closed at that bar's open, costs charged, and held flat after
    (``close_at_data_end``); the opens after it only repeat its open."""


@dataclass(frozen=True)
class CoreResult:
    """Per-bar fractions of sleeve equity (see the module docstring)."""

    gross: FloatArray
    funding: FloatArray
    cost: FloatArray
    net: FloatArray
    turnover: FloatArray
    mark: FloatArray
    """``1 + gross - funding``: the sleeve's growth over the bar, before the trade."""


@dataclass(frozen=True)
class BacktestResult:
    """Everything a report needs; currency series are in the equity's currency."""

    weights: dict[str, float]
    initial_equity: float
    positions: pd.DataFrame
    sleeve_gross_returns: pd.DataFrame
    sleeve_net_returns: pd.DataFrame
    sleeve_equity: pd.DataFrame
    sleeve_turnover: pd.DataFrame
    sleeve_gross_pnl: pd.DataFrame
    sleeve_fee: pd.DataFrame
    sleeve_slippage: pd.DataFrame
    sleeve_funding: pd.DataFrame
    gross_returns: pd.Series
    net_returns: pd.Series
    equity: pd.Series
    costs: pd.DataFrame
    turnover: pd.Series
    opens: FloatArray = field(repr=False, compare=False)
    """The sleeves' open prices (bars, sleeves): the trades' entry and exit prices."""

    # computed when first asked for: the replay and the guard read none of these
    @cached_property
    def trades(self) -> pd.DataFrame:
        """One row per trade (:func:`trades_table`)."""
        return trades_table(
            pd.DatetimeIndex(self.positions.index),
            list(self.positions.columns),
            self.opens,
            self.positions.to_numpy(),
            self.sleeve_gross_pnl.to_numpy(),
            self.sleeve_funding.to_numpy(),
            self.sleeve_fee.to_numpy(),
            self.sleeve_slippage.to_numpy(),
        )

    @cached_property
    def sleeve_contribution(self) -> pd.DataFrame:
        """Each sleeve's net return times its weight (they sum to ``net_returns``)."""
        weights = np.array([self.weights[name] for name in self.sleeve_net_returns.columns])
        return self.sleeve_net_returns * weights

    @cached_property
    def gross_equity(self) -> pd.Series:
        """The equity curve before every cost: ``initial x cumprod(1 + gross_returns)``."""
        growth = np.cumprod(1.0 + self.gross_returns.to_numpy())
        return pd.Series(
            self.initial_equity * growth, index=self.gross_returns.index, name="gross_equity"
        )


def backtest_core(
    open_: FloatArray, held: FloatArray, funding_rate: FloatArray, cost_rate: float | FloatArray
) -> CoreResult:
    """The whole per-bar arithmetic of one sleeve, in plain numpy.

    ``funding_rate[k]`` is the sum of settlement rates in (t[k-1], t[k]];
    ``cost_rate`` is (fee_bps + slippage_bps) * cost_multiplier / 1e4, one scalar for
    every bar or an array with the rate of the trade at each open (``cost[k] =
    turnover[k] * cost_rate[k]``). The arrays may also be (bars, sleeves), every sleeve at
    once: each element takes the same operations, so the same doubles.
    """
    prev = np.empty(np.shape(held))
    prev[:1] = 0.0
    prev[1:] = held[:-1]
    price_return = np.empty(np.shape(open_))
    price_return[:1] = 0.0
    np.divide(open_[1:], open_[:-1], out=price_return[1:])
    price_return[1:] -= 1.0
    gross = np.multiply(prev, price_return, out=price_return)
    funding = prev * funding_rate
    turnover = np.subtract(held, prev, out=prev)
    np.abs(turnover, out=turnover)
    cost = turnover * cost_rate
    # in place, the same operations in the same order as
    # net = (1.0 + gross - funding) * (1.0 - cost) - 1.0
    mark = 1.0 + gross
    mark -= funding
    net = 1.0 - cost
    np.multiply(mark, net, out=net)
    net -= 1.0
    return CoreResult(gross, funding, cost, net, turnover, mark)


def funding_per_bar(index: pd.DatetimeIndex, funding: pd.Series | None) -> FloatArray:
    """Sum funding rates into bars: a settlement at tau goes to the k with t[k-1] < tau <= t[k]."""
    out = np.zeros(len(index))
    if funding is None or funding.empty:
        return out
    rates = funding.to_numpy(dtype=float)
    if not np.isfinite(rates).all():
        raise InputError("funding rates must be finite", where="funding")
    bar_of = np.searchsorted(index.asi8, pd.DatetimeIndex(funding.index).as_unit(index.unit).asi8)
    inside = (bar_of >= 1) & (bar_of < len(index))
    out += np.bincount(bar_of[inside], weights=rates[inside], minlength=len(index))
    return out


def _validate(sleeves: Sequence[SleeveSpec], index: pd.DatetimeIndex) -> None:
    if not sleeves:
        raise InputError("at least one sleeve is required", where="sleeves")
    if not (index.is_monotonic_increasing and index.is_unique):
        raise InputError("the bar index must be sorted and unique", where="open")
    weights = np.array([s.weight for s in sleeves])
    if (weights < 0).any() or weights.sum() > 1.0 + 1e-9:
        raise InputError("sleeve weights must be >= 0 and sum to at most 1", where="weights")
    for sleeve in sleeves:
        if not sleeve.open.index.equals(index) or not sleeve.target.index.equals(index):
            raise InputError("open prices and targets must share one index", where=sleeve.symbol)
        prices = sleeve.open.to_numpy(dtype=float)
        if not (np.isfinite(prices).all() and (prices > 0).all()):
            raise InputError("open prices must be finite and positive", where=sleeve.symbol)
        if not np.isfinite(sleeve.target.to_numpy(dtype=float)).all():
            raise InputError("target positions must be finite", where=sleeve.symbol)


@dataclass(frozen=True)
class Market:
    """The sleeves as the kernel reads them: validated arrays on the common index.

    ``opens`` and ``funding`` (rates summed per bar, ``funding_per_bar``) are (bars,
    sleeves); ``fee_rate`` and ``slip_rate`` are fractions, scalars or (bars, sleeves).
    """

    index: pd.DatetimeIndex
    names: list[str]
    weights: FloatArray
    opens: FloatArray
    funding: FloatArray
    fee_rate: float | FloatArray
    slip_rate: float | FloatArray
    initial_equity: float

    @property
    def bars(self) -> int:
        return len(self.index)


@dataclass(frozen=True)
class Stretch:
    """The kernel over bars ``[start, end)``; (bars, sleeves) unless said otherwise.

    ``growth`` is ``cumprod(1 + portfolio_net)`` from bar 0 (equity = initial x growth)
    and ``sleeve_growth`` each sleeve's ``cumprod(1 + net)``; ``equity_before`` the
    portfolio equity before each bar's move (the initial equity at bar 0). The currency
    series are each sleeve's share of it: ``capital = equity_before x weight``.
    """

    start: int
    gross: FloatArray
    funding: FloatArray
    cost: FloatArray
    net: FloatArray
    turnover: FloatArray
    portfolio_net: FloatArray
    growth: FloatArray
    sleeve_growth: FloatArray
    equity_before: FloatArray
    gross_cur: FloatArray
    funding_cur: FloatArray
    fee_cur: FloatArray
    slip_cur: FloatArray


def market_of(
    sleeves: Sequence[SleeveSpec],
    *,
    fee_bps: float = 5.0,
    slippage_bps: float = 3.0,
    cost_multiplier: float = 1.0,
    initial_equity: float = 100_000.0,
    cost_bps: Sequence[tuple[FloatArray, FloatArray]] | None = None,
) -> Market:
    """Validate the sleeves and the costs (``run_backtest``'s arguments) into a Market."""
    if min(fee_bps, slippage_bps, cost_multiplier) < 0 or initial_equity <= 0:
        raise InputError("costs must be >= 0 and initial equity > 0", where="costs")
    index = pd.DatetimeIndex(sleeves[0].open.index) if sleeves else pd.DatetimeIndex([])
    _validate(sleeves, index)
    fee_rate, slip_rate = _cost_rates(
        fee_bps, slippage_bps, cost_multiplier, cost_bps, (len(index), len(sleeves))
    )
    return Market(
        index=index,
        names=[s.symbol for s in sleeves],
        weights=np.array([s.weight for s in sleeves], dtype=float),
        opens=np.column_stack([s.open.to_numpy(dtype=float) for s in sleeves]),
        funding=np.column_stack([funding_per_bar(index, s.funding) for s in sleeves]),
        fee_rate=fee_rate,
        slip_rate=slip_rate,
        initial_equity=initial_equity,
    )


def _rows(rate: float | FloatArray, start: int, end: int) -> float | FloatArray:
    return rate if np.ndim(rate) == 0 else np.asarray(rate)[start:end]


def advance(
    market: Market,
    held: FloatArray,
    start: int,
    end: int,
    *,
    growth_before: float = 1.0,
    sleeve_growth_before: FloatArray | None = None,
    into: Mapping[str, FloatArray] | None = None,
) -> Stretch:
    """The kernel over bars ``[start, end)`` of the (bars, sleeves) positions ``held``.

    What a bar needs from the bars before it is carried in: ``held[start - 1]`` (read
    from ``held``), the portfolio and sleeve growth at ``start - 1``. Every operation is
    elementwise, row by row or a running product seeded with the carried value, so a run
    advanced range by range gives the doubles of one pass over ``[0, bars)``.
    ``into`` (each of :data:`SLEEVE_SERIES` as a (bars, sleeves) array) receives the
    range's per-sleeve series in its rows ``[start, end)``, which the Stretch then views.

    The sleeves are computed together, as (rows, sleeves) blocks: ``opens``, ``held`` and
    ``funding`` are C-ordered, so a block is one run of memory and numpy's loops cover it
    at once (a few dozen calls a range, what the replay's short ranges pay for).
    """
    first = max(start - 1, 0)
    pad = start - first  # 1 when a bar before the range carries in
    weights, width = market.weights, len(market.names)
    total_rate = np.asarray(market.fee_rate + market.slip_rate)
    core = backtest_core(
        market.opens[first:end],
        np.ascontiguousarray(held[first:end]),
        market.funding[first:end],
        _rows(total_rate, first, end),
    )
    # The portfolio return is numpy's matrix product (BLAS, as it always was) of the
    # C-ordered (rows, sleeves) returns: a row's result does not depend on the rows
    # multiplied with it, except that numpy takes another route for a single row; with
    # the carried bar a range has two (tests bind it)
    portfolio_net = _weighted_sum(core.net, weights)[pad:]
    growth = _running_product(growth_before, portfolio_net)
    equity_before = market.initial_equity * growth[:-1]  # the initial equity at bar 0

    def out(name: str) -> FloatArray | None:
        return None if into is None else into[name][start:end]

    def kept(name: str, values: FloatArray) -> FloatArray:
        target = out(name)
        if target is None:
            return values
        target[...] = values
        return target

    gross, funding, cost = core.gross[pad:], core.funding[pad:], core.cost[pad:]
    net = core.net[pad:]
    capital = np.multiply.outer(equity_before, weights)  # each sleeve's share
    cost_cur = np.multiply(capital, core.mark[pad:])  # capital * (1 + gross - funding) * cost
    cost_cur *= cost
    fee_cur = np.multiply(cost_cur, _fee_share(market, total_rate, start, end), out=out("fee_cur"))
    before = np.ones(width) if sleeve_growth_before is None else sleeve_growth_before
    sleeve_growth = np.empty((len(net) + 1, width))
    sleeve_growth[0] = before
    np.add(net, 1.0, out=sleeve_growth[1:])
    np.cumprod(sleeve_growth, axis=0, out=sleeve_growth)
    return Stretch(
        start=start,
        portfolio_net=portfolio_net,
        growth=growth[1:],
        equity_before=equity_before,
        gross=kept("gross", gross),
        funding=kept("funding", funding),
        cost=kept("cost", cost),
        net=kept("net", net),
        turnover=kept("turnover", core.turnover[pad:]),
        sleeve_growth=kept("sleeve_growth", sleeve_growth[1:]),
        gross_cur=np.multiply(capital, gross, out=out("gross_cur")),
        funding_cur=np.multiply(capital, funding, out=out("funding_cur")),
        fee_cur=fee_cur,
        slip_cur=np.subtract(cost_cur, fee_cur, out=out("slip_cur")),
    )


def _fee_share(market: Market, total_rate: FloatArray, start: int, end: int) -> float | FloatArray:
    """The fee's share of each sleeve's cost rate over ``[start, end)`` (0 where there is
    no cost); of scalar rates, one Python division (the same double)."""
    fee_rate = np.asarray(market.fee_rate)
    if fee_rate.ndim == 0:
        total = float(total_rate)
        return float(fee_rate) / total if total > 0 else 0.0
    fee, total_rows = fee_rate[start:end], total_rate[start:end]
    share: FloatArray = np.divide(
        fee, total_rows, out=np.zeros(np.shape(total_rows)), where=total_rows > 0
    )
    return share


def _weighted_sum(columns: FloatArray, weights: FloatArray) -> FloatArray:
    """``columns @ weights``, numpy's matrix product; of one column that is one product
    per row, computed as such (the same doubles, without a slow matrix-vector call)."""
    product: FloatArray = columns[:, 0] * weights[0] if columns.shape[1] == 1 else columns @ weights
    return product


def _row_sums(columns: FloatArray) -> FloatArray:
    """Each row's sum; of one column, the column itself (the same doubles)."""
    return columns[:, 0] if columns.shape[1] == 1 else columns.sum(axis=1)


def _running_product(seed: float, values: FloatArray) -> FloatArray:
    """``cumprod([seed, 1 + values...])``, computed in one buffer."""
    out = np.empty(values.size + 1)
    out[0] = seed
    np.add(values, 1.0, out=out[1:])
    return np.cumprod(out, out=out)


SLEEVE_SERIES = (
    "gross",
    "funding",
    "cost",
    "net",
    "turnover",
    "sleeve_growth",
    "gross_cur",
    "funding_cur",
    "fee_cur",
    "slip_cur",
)
"""The per-sleeve (bars, sleeves) series of a :class:`Stretch`."""


def run_backtest(
    sleeves: Sequence[SleeveSpec],
    *,
    fee_bps: float = 5.0,
    slippage_bps: float = 3.0,
    cost_multiplier: float = 1.0,
    initial_equity: float = 100_000.0,
    signal_delay: int = 1,
    cost_bps: Sequence[tuple[FloatArray, FloatArray]] | None = None,
) -> BacktestResult:
    """Backtest constant-weight sleeves; conventions in the module docstring.

    ``cost_bps``, when given, holds per sleeve (in order) the per-bar fee and slippage
    in bps of the notional traded at each open; it replaces ``fee_bps`` and
    ``slippage_bps`` (still times ``cost_multiplier``).
    """
    market = market_of(
        sleeves,
        fee_bps=fee_bps,
        slippage_bps=slippage_bps,
        cost_multiplier=cost_multiplier,
        initial_equity=initial_equity,
        cost_bps=cost_bps,
    )
    return simulate(market, held_of(sleeves, signal_delay))


def held_of(sleeves: Sequence[SleeveSpec], signal_delay: int) -> FloatArray:
    """The (bars, sleeves) positions held (``strategies.held_positions`` of each target),
    flat from a delisted sleeve's last bar on (``close_at_data_end``)."""
    return np.column_stack(
        [
            close_at_data_end(
                held_positions(s.target, signal_delay).to_numpy(dtype=float),
                pd.DatetimeIndex(s.target.index),
                s.last_bar,
            )
            for s in sleeves
        ]
    )


def close_at_data_end(
    held: FloatArray, index: pd.DatetimeIndex, last_bar: pd.Timestamp | None
) -> FloatArray:
    """``held`` with the position closed at the open of ``last_bar`` and flat after.

    Survivorship (seed 001): a symbol whose data ends (a delisting) is not an error.
    The trade back to flat executes at the last price there is, the open of its last
    bar, and pays the usual costs there; nothing is held over bars with no data.
    """
    if last_bar is None:
        return held
    out = np.array(held, dtype=float, copy=True)
    out[int(index.searchsorted(last_bar, side="left")) :] = 0.0
    return out


def simulate(market: Market, held: FloatArray) -> BacktestResult:
    """The backtest of validated sleeves (``market_of``) holding ``held``."""
    return assemble(market, held, advance(market, held, 0, market.bars))


def assemble(market: Market, held: FloatArray, run: Stretch) -> BacktestResult:
    """The BacktestResult of a whole run (``run`` over every bar).

    The frames and series wrap ``run``'s arrays without copying them (``advance`` made
    them for this run alone); ``held`` belongs to the caller and is copied.
    """
    index, names, weights = market.index, market.names, market.weights
    initial_equity = market.initial_equity

    def frame(values: FloatArray) -> pd.DataFrame:
        return pd.DataFrame(values, index=index, columns=names, copy=False)

    def series(values: FloatArray, name: str) -> pd.Series:
        return pd.Series(values, index=index, name=name, copy=False)

    costs = np.empty((3, len(index)))  # one block, a row per column
    for row, part in enumerate((run.fee_cur, run.slip_cur, run.funding_cur)):
        costs[row] = _row_sums(part)
    return BacktestResult(
        weights=dict(zip(names, weights.tolist(), strict=True)),
        initial_equity=initial_equity,
        positions=pd.DataFrame(held, index=index, columns=names, copy=True),
        sleeve_gross_returns=frame(run.gross),
        sleeve_net_returns=frame(run.net),
        sleeve_equity=frame(initial_equity * weights * run.sleeve_growth),
        sleeve_turnover=frame(run.turnover),
        sleeve_gross_pnl=frame(run.gross_cur),
        sleeve_fee=frame(run.fee_cur),
        sleeve_slippage=frame(run.slip_cur),
        sleeve_funding=frame(run.funding_cur),
        gross_returns=series(_weighted_sum(run.gross, weights), "gross_return"),
        net_returns=series(run.portfolio_net, "net_return"),
        equity=series(initial_equity * run.growth, "equity"),
        costs=pd.DataFrame(
            costs.T, index=index, columns=["fee", "slippage", "funding"], copy=False
        ),
        turnover=series(_weighted_sum(run.turnover, weights), "turnover"),
        opens=market.opens,
    )


def _cost_rates(
    fee_bps: float,
    slippage_bps: float,
    multiplier: float,
    per_bar_bps: Sequence[tuple[FloatArray, FloatArray]] | None,
    shape: tuple[int, int],
) -> tuple[float | FloatArray, float | FloatArray]:
    """Fee and slippage as fractions: scalars, or (bars, sleeves) arrays from ``per_bar_bps``."""
    if per_bar_bps is None:
        return fee_bps * multiplier / 1e4, slippage_bps * multiplier / 1e4
    if len(per_bar_bps) != shape[1]:
        raise InputError("per-bar costs need one (fee, slippage) pair per sleeve", where="costs")
    fee = np.column_stack([np.asarray(f, dtype=float) for f, _ in per_bar_bps])
    slip = np.column_stack([np.asarray(s, dtype=float) for _, s in per_bar_bps])
    if fee.shape != shape or slip.shape != shape:
        raise InputError("per-bar costs need one value per bar", where="costs")
    if not (np.isfinite(fee).all() and np.isfinite(slip).all()) or min(fee.min(), slip.min()) < 0:
        raise InputError("per-bar costs must be finite and >= 0", where="costs")
    return fee * multiplier / 1e4, slip * multiplier / 1e4


TRADE_COLUMNS = [
    "symbol",
    "side",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "entry_position",
    "holding_bars",
    "gross_pnl",
    "fee",
    "slippage",
    "funding",
    "costs",
    "pnl",
    "is_open",
]


def trades_table(
    index: pd.DatetimeIndex,
    names: Sequence[str],
    opens: FloatArray,
    held: FloatArray,
    gross_cur: FloatArray,
    funding_cur: FloatArray,
    fee_cur: FloatArray,
    slip_cur: FloatArray,
) -> pd.DataFrame:
    """One row per trade: a maximal run of bars held with the same non-zero sign.

    Entry at the open where the sign starts, exit at the open where the
    position goes flat or flips (a flip closes one trade and opens another).
    Resizing within the same sign stays inside the trade. A trade's pnl is
    its bars' gross pnl minus fee, slippage and funding; the cost of a flip is
    split between the closed and the new trade in proportion to
    ``|held[k-1]|`` and ``|held[k]|``. A trade still open at the last bar has
    no exit (``is_open``), and its pnl is marked to the last open.
    """
    frames = [
        _sleeve_trades(
            index,
            name,
            opens[:, i],
            held[:, i],
            gross_cur[:, i],
            funding_cur[:, i],
            fee_cur[:, i],
            slip_cur[:, i],
        )
        for i, name in enumerate(names)
    ]
    non_empty = [f for f in frames if not f.empty]
    if not non_empty:
        return pd.DataFrame({c: [] for c in TRADE_COLUMNS})
    return pd.concat(non_empty, ignore_index=True).sort_values("entry_time", kind="stable")


def _sleeve_trades(
    index: pd.DatetimeIndex,
    name: str,
    open_: FloatArray,
    held: FloatArray,
    gross_cur: FloatArray,
    funding_cur: FloatArray,
    fee_cur: FloatArray,
    slip_cur: FloatArray,
) -> pd.DataFrame:
    n = held.size
    prev_held = np.empty(n)
    prev_held[:1] = 0.0
    prev_held[1:] = held[:-1]
    # trades start and end only where the position changes: work on those bars alone
    changed = np.flatnonzero(held != prev_held)
    sign, prev_sign = np.sign(held[changed]), np.sign(prev_held[changed])
    flip = sign != prev_sign
    entry_bar = changed[flip & (sign != 0)]
    if not entry_bar.size:
        return pd.DataFrame()
    # cost at open k: the entering trade's share and the exiting trade's share, split at
    # a flip in proportion to |held[k]| and |held[k-1]| (elsewhere the entering trade's)
    flips = changed[flip]
    delta = np.abs(held[flips] - prev_held[flips])
    entry_frac, exit_frac = np.abs(held[flips]) / delta, np.abs(prev_held[flips]) / delta

    def attributed(cost: FloatArray) -> FloatArray:
        """``cost`` with each flip's exiting share moved onto the closed trade's last bar."""
        out = cost.copy()
        out[flips] = cost[flips] * entry_frac
        before = flips >= 1
        out[flips[before] - 1] += cost[flips[before]] * exit_frac[before]
        return out

    def on_held_interval(values: FloatArray) -> FloatArray:
        """Move values stamped k+1 (realised on held[k]) onto interval k."""
        return np.concatenate((values[1:], [0.0]))

    def total(values: FloatArray) -> FloatArray:
        # flat bars carry zero pnl and zero attributed cost, so each segment
        # from one trade's entry to the next one's sums exactly that trade
        return np.add.reduceat(values, entry_bar)

    # a trade ends where the sign moves away from it, or is still open after the last bar
    exit_bar = changed[flip & (prev_sign != 0)]
    if held[-1] != 0:
        exit_bar = np.append(exit_bar, n)
    is_open = exit_bar >= n
    exit_clipped = np.minimum(exit_bar, n - 1)
    gross_t = total(on_held_interval(gross_cur))
    fund_t = total(on_held_interval(funding_cur))
    fee_t, slip_t = total(attributed(fee_cur)), total(attributed(slip_cur))
    costs = fee_t + slip_t + fund_t
    return pd.DataFrame(
        {
            "symbol": name,
            "side": np.where(held[entry_bar] > 0, "long", "short"),
            "entry_time": index[entry_bar],
            "exit_time": index[exit_clipped].where(~is_open),
            "entry_price": open_[entry_bar],
            "exit_price": np.where(is_open, np.nan, open_[exit_clipped]),
            "entry_position": held[entry_bar],
            "holding_bars": exit_clipped - entry_bar,
            "gross_pnl": gross_t,
            "fee": fee_t,
            "slippage": slip_t,
            "funding": fund_t,
            "costs": costs,
            "pnl": gross_t - costs,
            "is_open": is_open,
        }
    )
