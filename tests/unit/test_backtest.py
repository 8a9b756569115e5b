from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.domain.backtest import (
    SleeveSpec,
    Stretch,
    advance,
    assemble,
    backtest_core,
    funding_per_bar,
    market_of,
    run_backtest,
    trades_table,
)
from stagectl.errors import InputError
from tests import trades_reference

INDEX = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")
OPEN = pd.Series([100.0, 102.0, 101.0, 103.0, 104.0, 100.0], index=INDEX)
# targets from bar closes; held = [0, 1, 1, -1, -1, 0] with signal_delay 1
TARGET = pd.Series([1.0, 1.0, -1.0, -1.0, 0.0, 0.0], index=INDEX)
FUNDING = pd.Series([0.001], index=[INDEX[2]])


def hand_example() -> pd.Series:
    e1 = 1000.0 * (1 - 0.0008)  # buy 1 at open 102: fee 5 + slippage 3 bps
    e2 = e1 * (1 + (101 / 102 - 1) - 0.001)  # long over 102 -> 101, pays 0.1 % funding
    e3 = e2 * (103 / 101) * (1 - 0.0016)  # long over 101 -> 103, flip: |delta| = 2
    e4 = e3 * (1 - (104 / 103 - 1))  # short over 103 -> 104
    e5 = e4 * (1 - (100 / 104 - 1)) * (1 - 0.0008)  # short over 104 -> 100, buy back
    return pd.Series([1000.0, e1, e2, e3, e4, e5], index=INDEX)


def test_every_trade_still_open_keeps_exit_time_a_utc_datetime_column() -> None:
    # the exit times were an object column, which became naive datetime64[s] when all
    # of them were missing
    target = pd.Series([1.0] * 6, index=INDEX)
    trades = run_backtest([SleeveSpec("X", OPEN, target, 1.0)]).trades
    assert trades["exit_time"].dtype == trades["entry_time"].dtype


@settings(max_examples=150, deadline=None)
@given(
    st.integers(2, 60).flatmap(
        lambda n: st.tuples(
            st.lists(st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0]), min_size=n, max_size=n),
            st.lists(st.floats(-50.0, 50.0), min_size=n, max_size=n),
            st.lists(st.floats(0.0, 5.0), min_size=n, max_size=n),
        )
    )
)
def test_trades_table_gives_the_per_bar_algorithms_doubles(
    case: tuple[list[float], list[float], list[float]],
) -> None:
    held_list, flows, fees = case
    held = np.array(held_list)
    n = held.size
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    opens = 100.0 + np.arange(n)
    prev = np.concatenate(([0.0], held[:-1]))
    traded = np.abs(held - prev) > 0
    fee = np.where(traded, fees, 0.0)  # costs only where the position changes
    slip = fee * 0.375
    gross, funding = np.array(flows), np.array(flows[::-1]) * 0.01
    table = trades_table(
        index, ["X"], opens[:, None], held[:, None], gross[:, None], funding[:, None],
        fee[:, None], slip[:, None],
    )  # fmt: skip
    reference = trades_reference.sleeve_trades(index, "X", opens, held, gross, funding, fee, slip)
    assert len(table) == len(reference)
    for column in reference.columns:
        if column == "exit_time":
            times = [[None if pd.isna(t) else t for t in f[column]] for f in (table, reference)]
            assert times[0] == times[1]
        else:
            np.testing.assert_array_equal(table[column], reference[column], err_msg=column)


def test_the_trades_table_is_built_when_first_read() -> None:
    # the replay and the guard never read it: two tables were a fifth of a replay
    result = run_backtest([SleeveSpec("X", OPEN, TARGET, 1.0, FUNDING)], initial_equity=1000.0)
    assert "trades" not in vars(result)
    trades = result.trades
    assert result.trades is trades
    expected = trades_table(
        INDEX, ["X"], OPEN.to_numpy()[:, None], result.positions.to_numpy(),
        result.sleeve_gross_pnl.to_numpy(), result.sleeve_funding.to_numpy(),
        result.sleeve_fee.to_numpy(), result.sleeve_slippage.to_numpy(),
    )  # fmt: skip
    pd.testing.assert_frame_equal(trades, expected)


def test_backtest_equity_matches_the_hand_computed_example() -> None:
    result = run_backtest([SleeveSpec("X", OPEN, TARGET, 1.0, FUNDING)], initial_equity=1000.0)
    expected = hand_example()
    assert result.positions["X"].tolist() == [0.0, 1.0, 1.0, -1.0, -1.0, 0.0]
    assert result.equity.to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-12)
    e = expected.to_numpy()
    assert result.costs["fee"].tolist() == pytest.approx(
        [0, 1000 * 0.0005, 0, e[2] * 103 / 101 * 0.0010, 0, e[4] * 108 / 104 * 0.0005]
    )
    assert result.costs["funding"].tolist() == pytest.approx([0, 0, e[1] * 0.001, 0, 0, 0])
    assert result.turnover.tolist() == [0.0, 1.0, 0.0, 2.0, 0.0, 1.0]


def test_backtest_trades_table_splits_a_flip_into_two_trades() -> None:
    result = run_backtest([SleeveSpec("X", OPEN, TARGET, 1.0, FUNDING)], initial_equity=1000.0)
    trades = result.trades
    e = hand_example().to_numpy()
    assert trades["side"].tolist() == ["long", "short"]
    assert trades["entry_price"].tolist() == [102.0, 103.0]
    assert trades["exit_price"].tolist() == [103.0, 100.0]
    assert trades["holding_bars"].tolist() == [2, 2]
    assert trades["entry_time"].tolist() == [INDEX[1], INDEX[3]]
    assert trades["exit_time"].tolist() == [INDEX[3], INDEX[5]]
    flip_cost = e[2] * 103 / 101 * 0.0016
    long_gross = e[1] * (101 / 102 - 1) + e[2] * (103 / 101 - 1)
    long_costs = 1000 * 0.0008 + flip_cost / 2 + e[1] * 0.001
    assert trades["gross_pnl"].iloc[0] == pytest.approx(long_gross)
    assert trades["costs"].iloc[0] == pytest.approx(long_costs)
    assert trades["pnl"].sum() == pytest.approx(e[-1] - 1000.0)


def test_open_trade_at_the_end_has_no_exit() -> None:
    target = pd.Series([1.0] * 6, index=INDEX)
    result = run_backtest([SleeveSpec("X", OPEN, target, 1.0)], initial_equity=1000.0)
    trade = result.trades.iloc[0]
    assert bool(trade["is_open"])
    assert pd.isna(trade["exit_time"])
    assert trade["holding_bars"] == 4
    assert trade["pnl"] == pytest.approx(result.equity.iloc[-1] - 1000.0)


def test_funding_at_a_bar_open_is_charged_to_the_position_held_before_it() -> None:
    funding = pd.Series(
        [0.5, 0.25, 0.125, 9.0],
        index=pd.DatetimeIndex(
            ["2024-01-01T00:00Z", "2024-01-01T01:00Z", "2024-01-01T01:30Z", "2024-01-01T06:00Z"]
        ),
    )
    # t0 and after the last open fall outside; 01:00 -> bar 1; 01:30 -> bar 2
    assert funding_per_bar(INDEX, funding).tolist() == [0, 0.25, 0.125, 0, 0, 0]


def test_cash_weight_carries_no_exposure() -> None:
    full = run_backtest([SleeveSpec("X", OPEN, TARGET, 1.0)])
    half = run_backtest([SleeveSpec("X", OPEN, TARGET, 0.5)])
    assert half.net_returns.to_numpy() == pytest.approx(0.5 * full.net_returns.to_numpy())


def test_portfolio_return_is_the_weighted_sum_of_sleeve_returns() -> None:
    other = pd.Series([50.0, 49.0, 51.0, 52.0, 50.0, 53.0], index=INDEX)
    result = run_backtest(
        [SleeveSpec("X", OPEN, TARGET, 0.54), SleeveSpec("Y", other, -TARGET, 0.46)]
    )
    expected = 0.54 * result.sleeve_net_returns["X"] + 0.46 * result.sleeve_net_returns["Y"]
    assert result.net_returns.to_numpy() == pytest.approx(expected.to_numpy())
    assert result.trades["pnl"].sum() == pytest.approx(result.equity.iloc[-1] - 100_000.0)


def test_backtest_rejects_weights_above_one() -> None:
    with pytest.raises(InputError):
        run_backtest([SleeveSpec("X", OPEN, TARGET, 0.6), SleeveSpec("Y", OPEN, TARGET, 0.6)])


def test_backtest_rejects_misaligned_targets() -> None:
    with pytest.raises(InputError):
        run_backtest([SleeveSpec("X", OPEN, TARGET.iloc[1:], 1.0)])


def test_core_matches_explicit_formulas() -> None:
    core = backtest_core(
        np.array([10.0, 11.0, 9.9]), np.array([1.0, -1.0, -1.0]), np.array([0.0, 0.01, 0.0]), 0.001
    )
    assert core.gross.tolist() == pytest.approx([0.0, 0.1, 0.1])
    assert core.funding.tolist() == pytest.approx([0.0, 0.01, 0.0])
    assert core.cost.tolist() == pytest.approx([0.001, 0.002, 0.0])
    assert core.net.tolist() == pytest.approx([-0.001, 1.09 * 0.998 - 1, 0.1])


price_paths = st.lists(st.floats(0.6, 1.6), min_size=3, max_size=80).map(
    lambda ratios: 100.0 * np.cumprod(ratios)
)


def series(values: np.ndarray) -> pd.Series:
    index = pd.date_range("2024-01-01", periods=len(values), freq="1h", tz="UTC")
    return pd.Series(values, index=index)


@settings(max_examples=60, deadline=None)
@given(price_paths)
def test_constant_long_without_costs_is_buy_and_hold_open_to_open(opens: np.ndarray) -> None:
    open_ = series(opens)
    result = run_backtest([SleeveSpec("X", open_, open_ * 0 + 1.0, 1.0)], fee_bps=0, slippage_bps=0)
    expected = 100_000.0 * opens[1:] / opens[1]
    assert result.equity.to_numpy()[1:] == pytest.approx(expected, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    price_paths.flatmap(
        lambda p: st.tuples(
            st.just(p),
            st.lists(st.sampled_from([-1.0, 0.0, 1.0]), min_size=len(p), max_size=len(p)),
            st.lists(st.floats(-0.003, 0.003), min_size=len(p), max_size=len(p)),
        )
    )
)
def test_doubling_costs_never_increases_net_equity(
    case: tuple[np.ndarray, list[float], list[float]],
) -> None:
    opens, targets, rates = case
    open_ = series(opens)
    funding = series(np.array(rates))
    sleeve = SleeveSpec("X", open_, series(np.array(targets)), 1.0, funding)
    base = run_backtest([sleeve], cost_multiplier=1.0)
    doubled = run_backtest([sleeve], cost_multiplier=2.0)
    assert (doubled.equity.to_numpy() <= base.equity.to_numpy() * (1 + 1e-12)).all()
    assert doubled.trades["pnl"].sum() == pytest.approx(doubled.equity.iloc[-1] - 100_000.0)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    bars=st.integers(2, 400),
    width=st.integers(1, 4),
    per_bar_costs=st.booleans(),
    cuts=st.lists(st.floats(0.0, 1.0), max_size=6),
)
def test_advancing_the_kernel_range_by_range_gives_one_pass_to_the_last_bit(
    seed: int, bars: int, width: int, per_bar_costs: bool, cuts: list[float]
) -> None:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=bars, freq="1h", tz="UTC")
    sleeves = [
        SleeveSpec(
            f"S{i}",
            pd.Series(100.0 * np.cumprod(1.0 + rng.normal(0, 0.01, bars)), index=index),
            pd.Series(rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], bars), index=index),
            0.9 / width,
            pd.Series(rng.normal(0, 1e-4, len(index[::8])), index=index[::8]),
        )
        for i in range(width)
    ]
    costs = (
        [(rng.random(bars) * 6, rng.random(bars) * 4) for _ in range(width)]
        if per_bar_costs
        else None
    )
    whole = run_backtest(sleeves, cost_bps=costs)
    market = market_of(sleeves, cost_bps=costs)
    held = whole.positions.to_numpy()
    bounds = sorted({0, bars, *(int(c * bars) for c in cuts)})
    growth, sleeve_growth, parts = 1.0, None, []
    for start, end in itertools.pairwise(bounds):
        part = advance(
            market, held, start, end, growth_before=growth, sleeve_growth_before=sleeve_growth
        )
        growth, sleeve_growth = part.growth[-1], part.sleeve_growth[-1]
        parts.append(part)
    ranged = assemble(market, held, concatenated(parts))
    for name in ("equity", "net_returns", "gross_equity", "turnover"):
        assert np.array_equal(getattr(ranged, name), getattr(whole, name)), name
    for name in ("sleeve_equity", "sleeve_fee", "sleeve_slippage", "sleeve_funding", "costs"):
        assert np.array_equal(getattr(ranged, name), getattr(whole, name)), name
    assert ranged.trades.equals(whole.trades)


def concatenated(parts: list[Stretch]) -> Stretch:
    """One Stretch of consecutive ranges."""
    fields = {f.name for f in dataclasses.fields(Stretch)} - {"start"}
    joined = {name: np.concatenate([getattr(p, name) for p in parts]) for name in fields}
    return Stretch(start=0, **joined)
