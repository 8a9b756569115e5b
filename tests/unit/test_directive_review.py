"""Re-evaluating an in-force REDUCE_RISK_50 or DISABLE_SLEEVE (seed 003 §4.3-4.4), as pure
rules (``domain.directives``) shared by the live guard and the replay."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from stagectl.domain.directives import (
    RECOVERY_STEP,
    Review,
    further_past,
    recovered_multiplier,
    review_due,
    review_reduce,
    review_since,
    review_sleeve,
)
from stagectl.domain.restart import sleeve_sharpe_30d

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
DAY = timedelta(hours=24)


def test_a_review_period_starts_at_the_last_review_else_confirmation_else_issue() -> None:
    confirmed, reviewed = T0 + timedelta(hours=3), T0 + timedelta(hours=30)
    assert review_since(T0, confirmed_at=None, reviewed_at=None) == T0  # paper: active at once
    assert review_since(T0, confirmed_at=confirmed, reviewed_at=None) == confirmed
    assert review_since(T0, confirmed_at=confirmed, reviewed_at=reviewed) == reviewed


def test_a_review_is_due_one_period_after_its_start() -> None:
    assert not review_due(T0, DAY, T0 + DAY - timedelta(seconds=1))
    assert review_due(T0, DAY, T0 + DAY)
    assert review_due(T0, timedelta(days=7), T0 + timedelta(days=8))


def test_reduce_recovers_a_quarter_per_clear_review_and_is_lifted_at_full_size() -> None:
    first = review_reduce(0.5, breaching=False, worsened=False)
    assert (first.outcome, first.multiplier, first.lifted) == (Review.RECOVERED, 0.75, False)
    second = review_reduce(first.multiplier, breaching=False, worsened=False)
    assert (second.outcome, second.multiplier, second.lifted) == (Review.RECOVERED, 1.0, True)
    assert RECOVERY_STEP == 0.25
    assert recovered_multiplier(0.9) == 1.0  # capped at full size


def test_reduce_still_breaching_is_kept_and_escalates_only_when_worse() -> None:
    kept = review_reduce(0.75, breaching=True, worsened=False)
    assert (kept.outcome, kept.multiplier, kept.lifted) == (Review.KEPT, 0.75, False)
    worse = review_reduce(0.5, breaching=True, worsened=True)
    assert (worse.outcome, worse.multiplier, worse.lifted) == (Review.WORSENED, 0.5, False)
    # a clear rule recovers whatever the comparison says
    assert review_reduce(0.5, breaching=False, worsened=True).outcome == Review.RECOVERED


@pytest.mark.parametrize(
    ("op", "value", "reference", "expected"),
    [
        (">", 5.2, 4.8, True),  # slippage above 4.5: higher is worse
        (">", 4.6, 4.8, False),
        (">=", 4.8, 4.8, False),  # as bad, not worse
        ("<", -0.7, -0.6, True),  # Sharpe below -0.5: lower is worse
        ("<=", -0.5, -0.6, False),
        ("abs>", -6.0, 5.5, True),  # |daily PnL| beyond 5 %: bigger magnitude is worse
        ("abs>", 5.1, -5.5, False),
        ("not_in", 2.0, 3.0, False),  # a set of states has no direction
        (">", None, 4.8, False),
        (">", 5.0, None, False),
        (">", math.nan, 4.8, False),
    ],
)
def test_further_past_follows_the_rules_direction(
    op: str, value: float | None, reference: float | None, expected: bool
) -> None:
    assert further_past(op, value, reference) is expected


def test_a_sleeve_comes_back_only_above_the_minimum_sharpe() -> None:
    assert review_sleeve(0.4, 0.0) == Review.RECOVERED
    assert review_sleeve(0.0, 0.0) == Review.KEPT  # "Sharpe > 0", not >=
    assert review_sleeve(-0.3, 0.0) == Review.KEPT
    assert review_sleeve(None, 0.0) == Review.KEPT  # too little data: stays off
    assert review_sleeve(math.nan, 0.0) == Review.KEPT


def test_sleeve_sharpe_is_the_annualised_30_day_hourly_sharpe() -> None:
    hours = 30 * 24
    returns = np.tile([0.002, -0.001], hours // 2 + 5)[: hours + 10]
    index = pd.date_range("2026-01-01", periods=len(returns), freq="h", tz="UTC")
    sharpe = sleeve_sharpe_30d(pd.Series(returns, index=index))
    assert sharpe.iloc[: hours - 1].isna().all()  # not before 30 full days
    window = returns[-hours:]
    expected = math.sqrt(8760) * window.mean() / window.std(ddof=1)
    assert sharpe.iloc[-1] == pytest.approx(expected)
