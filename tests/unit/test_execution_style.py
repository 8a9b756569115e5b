"""Seed 001 #8's execution-style rules and their order of precedence."""

from __future__ import annotations

from decimal import Decimal

import pytest

from stagectl.domain.execution import ExecutionStyle, StyleInputs, choose_style


def _inputs(**overrides: object) -> StyleInputs:
    values: dict[str, object] = {
        "notional_usd": Decimal("1000"),
        "spread_bps": 2.0,
        "signal_persistence": 0.5,
        "avg_bar_volume_usd": Decimal("10000000"),
    }
    values.update(overrides)
    return StyleInputs(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "style"),
    [
        ({}, ExecutionStyle.LIMIT),
        ({"spread_bps": 10.0}, ExecutionStyle.LIMIT),
        ({"spread_bps": 10.5}, ExecutionStyle.POST_ONLY),
        ({"signal_persistence": 0.70}, ExecutionStyle.LIMIT),
        ({"signal_persistence": 0.71}, ExecutionStyle.TWAP),
        ({"notional_usd": Decimal("50000")}, ExecutionStyle.LIMIT),
        ({"notional_usd": Decimal("50000.01")}, ExecutionStyle.ICEBERG),
        ({"avg_bar_volume_usd": Decimal("10000")}, ExecutionStyle.LIMIT),
        ({"avg_bar_volume_usd": Decimal("9999")}, ExecutionStyle.POV),
    ],
)
def test_each_rule_at_its_threshold(overrides: dict[str, object], style: ExecutionStyle) -> None:
    assert choose_style(_inputs(**overrides)).style is style


def test_precedence_pov_iceberg_twap_post_only() -> None:
    everything = {
        "notional_usd": Decimal("60000"),
        "spread_bps": 20.0,
        "signal_persistence": 0.9,
        "avg_bar_volume_usd": Decimal("100000"),
    }
    assert choose_style(_inputs(**everything)).style is ExecutionStyle.POV
    everything["avg_bar_volume_usd"] = Decimal("10000000")
    assert choose_style(_inputs(**everything)).style is ExecutionStyle.ICEBERG
    everything["notional_usd"] = Decimal("5000")
    assert choose_style(_inputs(**everything)).style is ExecutionStyle.TWAP
    everything["signal_persistence"] = 0.2
    assert choose_style(_inputs(**everything)).style is ExecutionStyle.POST_ONLY


def test_unknown_volume_skips_pov_and_urgent_is_market() -> None:
    big = _inputs(notional_usd=Decimal("60000"), avg_bar_volume_usd=Decimal("0"))
    assert choose_style(big).style is ExecutionStyle.ICEBERG
    urgent = _inputs(notional_usd=Decimal("60000"), spread_bps=50.0, urgent=True)
    choice = choose_style(urgent)
    assert choice.style is ExecutionStyle.MARKET
    assert "urgent" in choice.reason


def test_sliced_styles() -> None:
    assert {s for s in ExecutionStyle if s.sliced} == {
        ExecutionStyle.TWAP,
        ExecutionStyle.POV,
        ExecutionStyle.ICEBERG,
    }
