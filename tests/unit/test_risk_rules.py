"""The risk guard's rules: comparisons, near misses, streaks and precedence, by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from stagectl.config.risk_guard import Rule
from stagectl.domain.risk_rules import (
    IndicatorFrames,
    breaches,
    evaluate_rules,
    exit_code_for,
    near_threshold,
    rule_breach_series,
    streak_lengths,
)

NAN = np.nan


def rule(**overrides: Any) -> Rule:
    fields: dict[str, Any] = {
        "id": "r",
        "indicator": "running_mdd_pct",
        "op": ">",
        "value": 12.0,
        "action": "FLATTEN_ALL",
        "severity": "CRITICAL",
        "scope": "portfolio",
        "message": "m",
        **overrides,
    }
    return Rule.model_validate(fields)


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("<", [True, False, False, False]),
        ("<=", [True, True, False, False]),
        (">", [False, False, True, False]),
        (">=", [False, True, True, False]),
    ],
)
def test_comparison_operators_and_nan_never_breaches(op: str, expected: list[bool]) -> None:
    values = np.array([4.0, 5.0, 6.0, NAN])
    assert breaches(values, rule(op=op, value=5.0)).tolist() == expected


def test_abs_greater_breaches_both_ways() -> None:
    values = np.array([-5.1, -5.0, 4.9, 5.01])
    assert breaches(values, rule(op="abs>", value=5.0)).tolist() == [True, False, False, True]


def test_not_in_breaches_outside_the_states() -> None:
    values = np.array([-1.0, 0.0, 1.0, 2.0, 0.5, NAN])
    allowed = rule(op="not_in", value=[-1.0, 0.0, 1.0], indicator="position_state", scope="sleeve")
    assert breaches(values, allowed).tolist() == [False, False, False, True, True, False]


def test_scale_turns_funding_bps_per_day_into_percent_per_year() -> None:
    funding = rule(indicator="funding_drag_bps_per_day", value=2.0, scale=3.65)
    # 0.55 bps/day x 3.65 = 2.0075 %/yr > 2; 0.54 -> 1.971
    assert breaches(np.array([0.55, 0.54]), funding).tolist() == [True, False]


def test_near_threshold_is_within_ten_percent_on_the_safe_side() -> None:
    mdd = rule(op=">", value=12.0)
    values = np.array([10.7, 10.8, 12.0, 12.1, NAN])
    # band 1.2: 10.8 and 12.0 are near; 12.1 breaches, so it is not "near"
    assert near_threshold(values, mdd, 10.0).tolist() == [False, True, True, False, False]


def test_near_threshold_of_abs_rule_uses_the_magnitude() -> None:
    pnl = rule(op="abs>", value=5.0, indicator="daily_pnl_pct")
    assert near_threshold(np.array([-4.6, 4.4, -5.5]), pnl, 10.0).tolist() == [True, False, False]


def test_not_in_has_no_near_band() -> None:
    state = rule(op="not_in", value=[-1.0, 0.0, 1.0], indicator="position_state", scope="sleeve")
    assert not near_threshold(np.array([0.0, 1.0]), state, 10.0).any()


def test_streak_carries_over_unobserved_days() -> None:
    breached = np.array([True, True, False, False, True])
    observed = np.array([True, True, False, True, True])
    assert streak_lengths(breached, observed).tolist() == [1, 2, 2, 0, 1]


def test_streak_of_nothing_is_empty() -> None:
    assert streak_lengths(np.array([], dtype=bool), np.array([], dtype=bool)).size == 0


def hourly(days: int) -> pd.DatetimeIndex:
    return pd.date_range("2025-01-01", periods=days * 24, freq="h", tz="UTC")


def daily_values(index: pd.DatetimeIndex, per_day: list[float]) -> pd.Series:
    """A series that holds each day's value at every hour (the 08:00 check reads it)."""
    return pd.Series(np.repeat(per_day, 24), index=index, dtype=float)


def test_consecutive_days_fire_at_the_third_daily_check_skipping_nan_days() -> None:
    index = hourly(6)
    # Sharpe below 0 on days 1, 2, 4, 5 with day 3 unknown: three breaching checks in a
    # row are day 1, day 2 and day 4 (the NaN day neither extends nor breaks the streak)
    values = daily_values(index, [1.0, -0.1, -0.2, NAN, -0.3, -0.4])
    sharpe_3d = rule(indicator="rolling_sharpe_20d", op="<", value=0.0, consecutive_days=3)
    result = rule_breach_series(values, sharpe_3d, index, "08:00")
    first = int(np.flatnonzero(result)[0])
    assert index[first] == pd.Timestamp("2025-01-05 08:00", tz="UTC")
    # from then on every hour sees the streak of the latest check
    assert result[first:].all()
    assert not result[:first].any()


def test_a_non_breaching_day_resets_the_streak() -> None:
    index = hourly(5)
    values = daily_values(index, [-1.0, -1.0, 0.5, -1.0, -1.0])
    sharpe_3d = rule(indicator="rolling_sharpe_20d", op="<", value=0.0, consecutive_days=3)
    assert not rule_breach_series(values, sharpe_3d, index, "08:00").any()


def test_single_day_rules_read_the_value_at_each_evaluation_time() -> None:
    index = hourly(1)
    values = pd.Series(np.arange(24, dtype=float), index=index)
    result = rule_breach_series(values, rule(value=20.0), index, "08:00")
    assert np.flatnonzero(result).tolist() == [21, 22, 23]


def frames(portfolio: dict[str, list[float]], sleeves: dict[str, dict[str, list[float]]]) -> Any:
    n = len(next(iter(portfolio.values())))
    index = pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC")
    return IndicatorFrames(
        portfolio=pd.DataFrame(portfolio, index=index),
        sleeves={s: pd.DataFrame(v, index=index) for s, v in sleeves.items()},
    ), index


RULES = (
    rule(id="mdd", value=12.0),
    rule(
        id="slip",
        indicator="realized_slippage_bps",
        value=4.5,
        action="REDUCE_RISK_50",
        severity="HIGH",
    ),
    rule(
        id="sleeve_mdd",
        indicator="sleeve_mdd_pct",
        value=15.0,
        action="DISABLE_SLEEVE",
        severity="HIGH",
        scope="sleeve",
    ),
    rule(
        id="pnl",
        indicator="daily_pnl_pct",
        op="abs>",
        value=5.0,
        action="MANUAL_REVIEW",
        severity="MEDIUM",
    ),
    rule(
        id="flap",
        indicator="trades_24h",
        value=5.0,
        action="WARNING",
        severity="MEDIUM",
        scope="sleeve",
    ),
)


def test_most_severe_action_and_highest_severity_win() -> None:
    data, index = frames(
        {
            "running_mdd_pct": [1.0, 1.0, 13.0, 1.0, 1.0, 11.5],
            "realized_slippage_bps": [1.0, 5.0, 5.0, 1.0, 1.0, 1.0],
            "daily_pnl_pct": [0.0, 0.0, 0.0, -6.0, 0.0, 0.0],
        },
        {
            "ETHUSDT": {
                "sleeve_mdd_pct": [0.0, 16.0, 16.0, 0.0, 0.0, 0.0],
                "trades_24h": [0.0, 0.0, 0.0, 6.0, 6.0, 0.0],
            },
            "SOLUSDT": {"sleeve_mdd_pct": [0.0] * 6, "trades_24h": [0.0] * 6},
        },
    )
    table = evaluate_rules(data, RULES, index, daily_utc="08:00", near_threshold_pct=10.0)
    actions = [table.action(i) for i in range(6)]
    severities = [table.severity(i) for i in range(6)]
    assert actions == [
        "NO_ACTION",
        "REDUCE_RISK_50",
        "FLATTEN_ALL",
        "WARNING",
        "WARNING",
        "NO_ACTION",
    ]
    assert severities == ["NONE", "HIGH", "CRITICAL", "MEDIUM", "MEDIUM", "LOW"]
    decision = table.decision(1)
    assert {(h.rule_id, h.sleeve) for h in decision.hits} == {
        ("slip", None),
        ("sleeve_mdd", "ETHUSDT"),
    }
    assert decision.disabled_sleeves == ("ETHUSDT",)
    near = table.decision(5).near
    assert [(n.rule_id, n.value, n.threshold) for n in near] == [("mdd", 11.5, 12.0)]


def test_consecutive_rule_past_threshold_on_a_short_streak_is_low() -> None:
    index = hourly(2)
    data = IndicatorFrames(
        portfolio=pd.DataFrame({"rolling_sharpe_20d": np.full(48, -0.2)}, index=index),
        sleeves={},
    )
    sharpe_3d = rule(
        id="sharpe_3d",
        indicator="rolling_sharpe_20d",
        op="<",
        value=0.0,
        consecutive_days=3,
        action="WARNING",
        severity="MEDIUM",
    )
    table = evaluate_rules(
        data, [sharpe_3d], index[-1:], daily_utc="08:00", near_threshold_pct=10.0
    )
    assert table.action(0) == "NO_ACTION"
    assert table.severity(0) == "LOW"
    assert [n.rule_id for n in table.decision(0).near] == ["sharpe_3d"]


@pytest.mark.parametrize(
    ("action", "code"),
    [
        ("NO_ACTION", 0),
        ("MANUAL_REVIEW", 1),
        ("WARNING", 1),
        ("REDUCE_RISK_50", 1),
        ("DISABLE_SLEEVE", 1),
        ("FLATTEN_ALL", 1),
    ],
)
def test_exit_code_is_one_for_any_recommended_action(action: str, code: int) -> None:
    assert exit_code_for(action) == code


def test_rows_longer_than_a_chunk_are_judged_as_element_by_element(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """evaluate_values judges long rows (minute bars) in cache-sized chunks (here 1,000
    evaluations): each evaluation's breach and near miss are those of the single value
    there, across the chunks' edges, a consecutive-day rule's included."""
    from stagectl.domain import risk_rules

    monkeypatch.setattr(risk_rules, "_CHUNK", 1000)
    n = 4 * 1440 + 7  # four days of minutes, six chunks and a bit
    index = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC")
    rng = np.random.default_rng(7)
    values = rng.normal(12.0, 1.5, n)
    values[rng.integers(0, n, 50)] = NAN
    checks = 480 + 1440 * np.arange(4)  # the 08:00 daily checks
    values[checks] = 20.0
    plain, abs_rule = rule(), rule(id="a", op="abs>", value=13.0, scale=0.5)
    streaky = rule(id="s", consecutive_days=2)
    keys = ((plain, None), (abs_rule, None), (streaky, None))
    table = risk_rules.evaluate_values(
        [values, values, values],
        keys,
        index.as_unit("ns").asi8,
        index,
        daily_utc="08:00",
        near_threshold_pct=10.0,
    )
    for k, (r, _) in enumerate(keys[:2]):
        assert table.breach_matrix[k].tolist() == [risk_rules.value_breaches(v, r) for v in values]
        assert table.near_matrix[k].tolist() == [risk_rules.value_near(v, r, 10.0) for v in values]
    # the streak of two checks holds from the second check on, across chunk edges
    fired = table.breach_matrix[2]
    assert not fired[: checks[1]].any() and fired[checks[1] :].all()
    past = [risk_rules.value_breaches(v, streaky) for v in values]
    near = [risk_rules.value_near(v, streaky, 10.0) for v in values]
    assert table.near_matrix[2].tolist() == [
        (p or c) and not f for p, c, f in zip(past, near, fired.tolist(), strict=True)
    ]


def test_decisions_over_chunks_rank_each_evaluation_from_its_own_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The action and severity ranks are judged chunk by chunk (minute bars): each
    evaluation's are the most severe of its own breaches, LOW for a near miss alone; the
    table keeps the value rows it was given when every bar is evaluated (a (keys x
    minutes) copy is hundreds of MB) and stacks them only when read."""
    from stagectl.domain import risk_rules

    monkeypatch.setattr(risk_rules, "_CHUNK", 333)
    n = 2 * 1440 + 11
    index = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC")
    rng = np.random.default_rng(3)
    drawdown, other = rng.normal(11.0, 2.0, n), rng.normal(4.0, 1.0, n)
    keys = (
        (rule(), None),
        (rule(id="w", value=5.0, action="WARNING", severity="MEDIUM"), None),
        (rule(id="m", op="<", value=3.0, action="MANUAL_REVIEW", severity="HIGH"), None),
    )
    rows = [drawdown, other, other]
    table = risk_rules.evaluate_values(
        rows, keys, index.as_unit("ns").asi8, index, daily_utc="08:00", near_threshold_pct=10.0
    )
    actions = np.array([[risk_rules.ACTION_RANK[r.action]] for r, _ in keys])
    severities = np.array([[risk_rules.SEVERITY_RANK[r.severity]] for r, _ in keys])
    expected_action = (table.breach_matrix * actions).max(axis=0)
    expected_severity = (table.breach_matrix * severities).max(axis=0)
    low = (expected_severity == 0) & table.near_matrix.any(axis=0)
    expected_severity[low] = risk_rules.SEVERITY_RANK["LOW"]
    assert table.action_rank.tolist() == expected_action.tolist()
    assert table.severity_rank.tolist() == expected_severity.tolist()
    assert {table.action(i) for i in range(n)} >= {"FLATTEN_ALL", "WARNING", "NO_ACTION"}
    assert low.any() and (expected_action > 0).any()
    assert all(
        np.shares_memory(kept, given) for kept, given in zip(table.key_values, rows, strict=True)
    )
    assert np.array_equal(table.values, np.stack(rows))
    i = int(np.flatnonzero(table.breach_matrix[0])[0])
    assert table.decision(i).hits[0].value == drawdown[i]
