"""Volatility targeting, Kelly/4 and the preset caps (seed 001 §5)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.config.loader import load_config
from stagectl.config.risk_presets import RiskPresetsConfig
from stagectl.domain.sizing import (
    CAP_LEVERAGE,
    CAP_OPEN_RISK,
    CAP_SECTOR,
    CAP_SINGLE_COIN,
    CAP_SINGLE_TRADE_RISK,
    KELLY_NON_POSITIVE,
    OpenExposure,
    SizingLimits,
    kelly_fraction,
    size_position,
    volatility_target_size,
)
from stagectl.errors import InputError

BALANCED = SizingLimits(per_trade_risk_pct=0.5, daily_loss_stop_pct=2.5, max_leverage=2.0)
ROOT = Path(__file__).resolve().parents[2]


def test_volatility_target_size_hand_computed() -> None:
    # 100k equity, 1 % target risk = 1000 USD; price 2000, 2 % vol -> 40 USD per coin -> 25
    assert volatility_target_size(100_000.0, 1.0, 2000.0, 0.02) == pytest.approx(25.0)
    sizes = volatility_target_size(100_000.0, 1.0, np.array([2000.0, 1000.0]), 0.02)
    assert sizes == pytest.approx([25.0, 50.0])
    with pytest.raises(InputError):
        volatility_target_size(100_000.0, 1.0, 2000.0, 0.0)


def test_kelly_hand_computed() -> None:
    # p 0.6, b = 2/1: (0.6*2 - 0.4)/2 = 0.4
    assert kelly_fraction(0.6, 2.0, 1.0) == pytest.approx(0.4)
    assert kelly_fraction(0.6, 2.0, -1.0) == pytest.approx(0.4)  # loss sign ignored
    # p 0.4, b 1: (0.4 - 0.6)/1 = -0.2
    assert kelly_fraction(0.4, 1.0, 1.0) == pytest.approx(-0.2)
    assert kelly_fraction(0.7, 1.0, 0.0) == pytest.approx(0.7)  # no losses: limit b -> inf
    assert kelly_fraction(0.5, 0.0, 1.0) == -math.inf


def test_uncapped_size_is_base_times_quarter_kelly() -> None:
    # base 25 coins (50k notional); Kelly 0.4 / 4 = 0.1 -> 5000 USD, 2.5 coins;
    # risk 5000 * 0.02 = 100 USD, every cap is far away
    limits = SizingLimits(per_trade_risk_pct=1.0, daily_loss_stop_pct=3.5, max_leverage=3.0)
    decision = size_position(
        equity=100_000.0, price=2000.0, volatility_risk=0.02, target_risk_pct=1.0,
        win_rate=0.6, avg_win=2.0, avg_loss=1.0, limits=limits,
    )  # fmt: skip
    assert decision.reason_code is None
    assert decision.base_size == pytest.approx(25.0)
    assert decision.size == pytest.approx(2.5)
    assert decision.notional_usd == pytest.approx(5000.0)
    assert decision.risk_usd == pytest.approx(100.0)


def test_negative_kelly_sizes_to_zero_with_a_reason() -> None:
    decision = size_position(
        equity=100_000.0, price=2000.0, volatility_risk=0.02, target_risk_pct=1.0,
        win_rate=0.4, avg_win=1.0, avg_loss=1.0, limits=BALANCED,
    )  # fmt: skip
    assert decision.size == 0.0
    assert decision.reason_code == KELLY_NON_POSITIVE


def assert_sized(
    exposure: OpenExposure, notional_usd: float, code: str, **overrides: float
) -> None:
    args: dict[str, float] = {
        "equity": 100_000.0, "price": 100.0, "volatility_risk": 0.002, "target_risk_pct": 1.0,
        "win_rate": 0.9, "avg_win": 1.0, "avg_loss": 1.0,
    }  # fmt: skip
    args.update(overrides)
    decision = size_position(limits=BALANCED, exposure=exposure, **args)
    assert decision.reason_code == code
    assert decision.notional_usd == pytest.approx(notional_usd)


def test_each_cap_binds_with_its_code() -> None:
    # base notional = 1000 / 0.002 = 500k; Kelly (0.9 - 0.1) = 0.8 / 4 -> 100k uncapped.
    # single coin 25k binds first with a 0.2 % stop (trade risk cap 500/0.002 = 250k).
    assert_sized(OpenExposure(), 25_000.0, CAP_SINGLE_COIN)
    # trade risk: 0.5 % of 100k = 500 USD over a 5 % stop -> 10k
    assert_sized(OpenExposure(), 10_000.0, CAP_SINGLE_TRADE_RISK, stop_distance=0.05)
    # sector 50k with 45k open leaves 5k
    assert_sized(OpenExposure(sector_notional_usd=45_000.0), 5000.0, CAP_SECTOR)
    # leverage 2x = 200k, 190k open leaves 10k
    assert_sized(OpenExposure(gross_notional_usd=190_000.0), 10_000.0, CAP_LEVERAGE)
    # open risk: 2.5 % = 2500 USD, 2480 open leaves 20 USD / 0.002 = 10k
    assert_sized(OpenExposure(open_risk_usd=2480.0), 10_000.0, CAP_OPEN_RISK)
    # an exhausted coin cap gives 0
    assert_sized(OpenExposure(coin_notional_usd=30_000.0), 0.0, CAP_SINGLE_COIN)


def test_limits_from_the_packaged_presets() -> None:
    config = load_config(ROOT / "config" / "risk_presets.yaml", RiskPresetsConfig)
    limits = SizingLimits.from_config(config, "aggressive")
    assert limits == SizingLimits(
        per_trade_risk_pct=1.0, daily_loss_stop_pct=3.5, max_leverage=3.0,
        single_coin_cap_pct=25.0, sector_cap_pct=50.0, kelly_divisor=4.0,
    )  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(
    equity=st.floats(1e3, 1e7),
    price=st.floats(0.01, 1e5),
    vol=st.floats(1e-4, 0.5),
    win_rate=st.floats(0.0, 1.0),
    avg_win=st.floats(0.01, 10.0),
    coin=st.floats(0.0, 1e7),
    risk=st.floats(0.0, 1e6),
)
def test_final_size_never_breaks_a_cap(
    equity: float, price: float, vol: float, win_rate: float, avg_win: float, coin: float,
    risk: float,
) -> None:  # fmt: skip
    exposure = OpenExposure(coin, coin, coin, risk)
    decision = size_position(
        equity=equity, price=price, volatility_risk=vol, target_risk_pct=1.0,
        win_rate=win_rate, avg_win=avg_win, avg_loss=1.0, limits=BALANCED, exposure=exposure,
    )  # fmt: skip
    n = decision.notional_usd
    slack = 1e-9 * equity
    assert n >= 0
    assert n * vol <= equity * 0.005 + slack
    assert n <= max(equity * 0.25 - coin, 0.0) + slack
    assert n <= max(equity * 2.0 - coin, 0.0) + slack
    assert n * vol <= max(equity * 0.025 - risk, 0.0) + slack
    assert n <= decision.uncapped_notional_usd + slack
