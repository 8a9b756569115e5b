"""The streaming guard against the batch definition: the same indicators at every bar,
the same decisions at one time (consecutive-day streaks included)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagectl.domain.risk_indicators import GuardInputs, compute_indicators
from stagectl.domain.risk_rules import (
    GuardDecision,
    breaches,
    evaluate_rules,
    near_threshold,
    value_breaches,
    value_near,
)
from stagectl.domain.risk_stream import (
    GuardStream,
    HourRow,
    IndicatorStream,
    divide,
    is_daily_check,
)
from tests.unit.test_risk_rules import rule

SLEEVES = ("ETHUSDT", "SOLUSDT")
TOLERANCE = 1e-9


def inputs_of(
    equity: np.ndarray,
    sleeve_equity: np.ndarray,
    flows: np.ndarray,
    *,
    start: str = "2025-01-01 05:00",
) -> GuardInputs:
    """GuardInputs on an hourly grid; ``flows`` columns: turnover, funding, slippage sum,
    priced fills, trades per sleeve; ``sleeve_equity`` one column per sleeve."""
    index = pd.date_range(start, periods=len(equity), freq="h", tz="UTC")
    sleeves = pd.DataFrame(sleeve_equity, index=index, columns=list(SLEEVES))
    return GuardInputs(
        equity=pd.Series(equity, index=index),
        sleeve_pnl=sleeves.diff(),
        sleeve_equity=sleeves,
        position_state=pd.DataFrame(
            np.sign(sleeve_equity - 100.0), index=index, columns=list(SLEEVES)
        ),
        turnover=pd.Series(flows[:, 0], index=index),
        trades=pd.DataFrame(flows[:, 4:6], index=index, columns=list(SLEEVES)),
        funding_paid=pd.Series(flows[:, 1], index=index),
        slippage_bps_sum=pd.Series(flows[:, 2], index=index),
        slippage_fills=pd.Series(flows[:, 3], index=index),
    )


def rows_of(inputs: GuardInputs) -> list[HourRow]:
    def sleeve_row(frame: pd.DataFrame, i: int) -> tuple[float, ...]:
        return tuple(float(frame[s].iloc[i]) for s in SLEEVES)

    return [
        HourRow(
            hour=ts.to_pydatetime(),
            equity=float(inputs.equity.iloc[i]),
            sleeve_equity=sleeve_row(inputs.sleeve_equity, i),
            position_state=sleeve_row(inputs.position_state, i),
            turnover=float(inputs.turnover.iloc[i]),
            trades=sleeve_row(inputs.trades, i),
            funding_paid=float(inputs.funding_paid.iloc[i]),
            slippage_bps_sum=float(inputs.slippage_bps_sum.iloc[i]),
            slippage_fills=float(inputs.slippage_fills.iloc[i]),
        )
        for i, ts in enumerate(inputs.equity.index)
    ]


def assert_same_values(streamed: dict[Any, float], frames: Any, i: int) -> None:
    for (indicator, sleeve), value in streamed.items():
        expected = float(frames.series(indicator, sleeve).iloc[i])
        if math.isnan(expected):
            assert math.isnan(value), (i, indicator, sleeve, value)
        else:
            assert value == pytest.approx(expected, rel=0, abs=TOLERANCE), (i, indicator, sleeve)


def random_inputs(seed: int, hours: int) -> GuardInputs:
    rng = np.random.default_rng(seed)
    equity = 10_000.0 * np.cumprod(1.0 + rng.normal(0.0, 0.004, hours))
    equity[rng.random(hours) < 0.05] = equity[0]  # equal equities: flat hours, ties at the peak
    sleeve_equity = 100.0 * np.cumprod(1.0 + rng.normal(0.0, 0.006, (hours, 2)), axis=0)
    sleeve_equity[rng.random((hours, 2)) < 0.03] = np.nan  # a missing sleeve value
    traded = rng.random(hours) < 0.2
    flows = np.column_stack(
        [
            np.where(traded, rng.random(hours) * 0.1, 0.0),
            np.where(rng.random(hours) < 0.12, rng.normal(0.5, 2.0, hours), 0.0),
            np.where(traded, rng.normal(2.0, 3.0, hours), 0.0),
            np.where(traded, rng.integers(1, 4, hours), 0).astype(float),
            np.where(traded, rng.integers(0, 2, hours), 0).astype(float),
            np.where(traded, rng.integers(0, 3, hours), 0).astype(float),
        ]
    )
    return inputs_of(equity, sleeve_equity, flows)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), hours=st.integers(1, 800))
def test_streamed_indicators_equal_compute_indicators_at_every_bar(seed: int, hours: int) -> None:
    inputs = random_inputs(seed, hours)
    frames = compute_indicators(inputs)
    stream = IndicatorStream(SLEEVES)
    for i, row in enumerate(rows_of(inputs)):
        stream.push(row)
        assert_same_values(stream.values(), frames, i)


def test_the_stream_crosses_the_30_day_and_20_day_windows_like_the_batch() -> None:
    inputs = random_inputs(7, 30 * 24 + 50)
    frames = compute_indicators(inputs)
    stream = IndicatorStream(SLEEVES)
    for i, row in enumerate(rows_of(inputs)):
        stream.push(row)
        if i in (479, 480, 481, 719, 720, 721, len(inputs.equity) - 1):
            assert_same_values(stream.values(), frames, i)
    assert not math.isnan(stream.values()[("return_30d_pct", None)])
    assert not math.isnan(stream.values()[("rolling_sharpe_20d", None)])


def test_a_copy_advances_without_moving_the_original() -> None:
    inputs = random_inputs(3, 60)
    rows = rows_of(inputs)
    stream = IndicatorStream(SLEEVES)
    for row in rows[:50]:
        stream.push(row)
    before = stream.values()
    twin = stream.copy()
    for row in rows[50:]:
        twin.push(row)
    after = stream.values()
    assert after.keys() == before.keys()
    assert all(same_value(after[k], before[k]) for k in after)
    assert_same_values(twin.values(), compute_indicators(inputs), 59)


def test_sharpe_of_a_flat_month_is_nan_as_pandas_gives_it() -> None:
    equity = np.full(490, 100.0)  # a flat book: every return 0, std 0
    stream = IndicatorStream(SLEEVES)
    inputs = inputs_of(equity, np.full((490, 2), 100.0), np.zeros((490, 6)))
    for row in rows_of(inputs):
        stream.push(row)
    assert math.isnan(stream.values()[("rolling_sharpe_20d", None)])
    assert math.isnan(compute_indicators(inputs).portfolio["rolling_sharpe_20d"].iloc[-1])


def test_sharpe_of_a_book_gone_flat_is_the_batchs_to_the_last_bit() -> None:
    # 600 volatile hours, then flat (a flattened book): once the window holds only zero
    # returns, pandas' running std keeps a residue (about 6e-11) while its mean is exactly
    # 0, so the batch says Sharpe 0.0 where exact maths says NaN; the stream says 0.0 too
    rng = np.random.default_rng(0)
    volatile = 10_000.0 * np.cumprod(1.0 + rng.normal(0.0, 0.003, 600))
    equity = np.concatenate([volatile, np.full(500, volatile[-1])])
    inputs = inputs_of(equity, np.full((1100, 2), 100.0), np.zeros((1100, 6)))
    batch = compute_indicators(inputs).portfolio["rolling_sharpe_20d"].to_numpy()
    stream = IndicatorStream(SLEEVES)
    streamed = []
    for row in rows_of(inputs):
        stream.push(row)
        streamed.append(stream.values()[("rolling_sharpe_20d", None)])
    assert np.array_equal(np.array(streamed), batch, equal_nan=True)
    assert batch[-1] == 0.0


def test_signal_mismatch_is_mismatched_over_compared_in_the_last_24_hours() -> None:
    stream = IndicatorStream(SLEEVES)
    start = pd.Timestamp("2025-01-01", tz="UTC")
    counts = {0: (4.0, 1.0), 10: (2.0, 2.0), 30: (1.0, 0.0)}
    seen = []
    for i in range(60):
        checks, mismatches = counts.get(i, (0.0, 0.0))
        stream.push(
            HourRow(
                hour=(start + pd.Timedelta(hours=i)).to_pydatetime(),
                equity=100.0,
                sleeve_equity=(50.0, 50.0),
                position_state=(0.0, 0.0),
                turnover=0.0,
                trades=(0.0, 0.0),
                funding_paid=0.0,
                slippage_bps_sum=0.0,
                slippage_fills=0.0,
                signal_checks=checks,
                signal_mismatches=mismatches,
            )
        )
        seen.append(stream.values()[("signal_mismatch_pct", None)])
    assert seen[0] == pytest.approx(25.0)
    assert seen[10] == pytest.approx(50.0)  # 3 of 6
    assert seen[23] == pytest.approx(50.0)
    assert seen[24] == pytest.approx(100.0)  # hour 0 left the window: 2 of 2
    assert seen[30] == pytest.approx(200.0 / 3.0)  # hours 10 and 30: 2 of 3
    assert seen[34] == 0.0  # hour 10 left: 0 of 1
    assert math.isnan(seen[54])  # hour 30 left too: none compared


def test_divide_follows_numpy_on_zero_denominators() -> None:
    assert divide(1.0, 0.0) == math.inf
    assert divide(-1.0, 0.0) == -math.inf
    assert math.isnan(divide(0.0, 0.0))
    assert math.isnan(divide(math.nan, 0.0))
    assert divide(3.0, 2.0) == 1.5


def test_daily_checks_are_the_bars_at_the_configured_utc_time() -> None:
    eight = pd.Timestamp("2025-01-02 08:00", tz="UTC").to_pydatetime()
    assert is_daily_check(eight, "08:00")
    assert not is_daily_check(eight, "09:00")
    assert not is_daily_check(eight, "08:30")


def same_value(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOLERANCE


def assert_same_decision(streamed: GuardDecision, batch: GuardDecision) -> None:
    """Equal but for the values, which agree to 1e-9 (NaN with NaN)."""
    assert (streamed.at, streamed.action, streamed.severity) == (
        batch.at,
        batch.action,
        batch.severity,
    )
    assert [replace(h, value=0.0) for h in streamed.hits] == [
        replace(h, value=0.0) for h in batch.hits
    ]
    assert [replace(n, value=0.0) for n in streamed.near] == [
        replace(n, value=0.0) for n in batch.near
    ]
    pairs = [
        *zip(streamed.hits, batch.hits, strict=True),
        *zip(streamed.near, batch.near, strict=True),
    ]
    assert all(same_value(a.value, b.value) for a, b in pairs), batch.at


RULES = [
    rule(id="mdd", op=">", value=1.5),
    rule(id="pnl", indicator="daily_pnl_pct", op="abs>", value=0.8, action="MANUAL_REVIEW",
         severity="MEDIUM"),
    rule(id="sharpe3", indicator="rolling_sharpe_20d", op="<", value=0.5, consecutive_days=3,
         action="WARNING", severity="MEDIUM"),
    rule(id="slip2", indicator="realized_slippage_bps", op=">", value=2.0, consecutive_days=2,
         action="REDUCE_RISK_50", severity="HIGH"),
    rule(id="sleeve_dd", indicator="sleeve_mdd_pct", op=">", value=3.0, scope="sleeve",
         action="DISABLE_SLEEVE", severity="HIGH"),
    rule(id="trades", indicator="trades_24h", op=">", value=3, scope="sleeve", action="WARNING",
         severity="MEDIUM"),
    rule(id="state", indicator="position_state", op="not_in", value=[-1, 0, 1], scope="sleeve",
         action="MANUAL_REVIEW", severity="MEDIUM"),
    rule(id="funding", indicator="funding_drag_bps_per_day", op=">", value=1.0, scale=3.65,
         action="WARNING", severity="MEDIUM"),
]  # fmt: skip


def judge_every_bar(seed: int) -> set[str]:
    """Stream and batch decisions compared bar by bar; the rules that fired."""
    inputs = random_inputs(seed, 700)
    frames = compute_indicators(inputs)
    index = pd.DatetimeIndex(inputs.equity.index)
    batch = evaluate_rules(frames, RULES, index, daily_utc="08:00", near_threshold_pct=10)
    stream = GuardStream(SLEEVES, RULES, daily_utc="08:00", near_threshold_pct=10)
    fired = set()
    for i, row in enumerate(rows_of(inputs)):
        stream.push(row)
        if i % 7 and i < 600:
            continue  # a decision costs more than a push: judge every 7th bar, then each
        table, _ = stream.decide()
        assert_same_decision(table.decision(0), batch.decision(i))
        np.testing.assert_allclose(table.values[:, 0], batch.values[:, i], rtol=0, atol=1e-9)
        fired |= {h.rule_id for h in table.decision(0).hits}
    return fired


def test_streamed_decisions_equal_evaluate_rules_with_both_streak_rules_firing() -> None:
    assert {"sharpe3", "slip2", "mdd", "sleeve_dd", "trades"} <= judge_every_bar(2)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_streamed_decisions_equal_evaluate_rules_at_every_bar(seed: int) -> None:
    assert judge_every_bar(seed)  # the rules are tight enough that breaches were judged


OPS = st.sampled_from(["<", "<=", ">", ">=", "abs>", "not_in"])
VALUES = st.one_of(
    st.floats(-10.0, 10.0, allow_nan=False),
    st.sampled_from([math.nan, -2.0, -1.0, 0.0, -0.0, 1.0, 2.0, 1.8, 2.2, 1.9, 2.1]),
)


@settings(max_examples=300, deadline=None)
@given(
    op=OPS,
    threshold=st.sampled_from([-2.0, 0.0, 1.0, 2.0]),
    scale=st.sampled_from([1.0, -1.0, 3.65]),
    near_pct=st.sampled_from([0.0, 10.0, 50.0]),
    values=st.lists(VALUES, min_size=1, max_size=8),
)
def test_one_value_is_judged_as_the_vectorised_rules_judge_it(
    op: str, threshold: float, scale: float, near_pct: float, values: list[float]
) -> None:
    judged = rule(op=op, value=[-1, 0, 1] if op == "not_in" else threshold, scale=scale)
    array = np.array(values)
    assert [value_breaches(v, judged) for v in values] == breaches(array, judged).tolist()
    assert [value_near(v, judged, near_pct) for v in values] == near_threshold(
        array, judged, near_pct
    ).tolist()
