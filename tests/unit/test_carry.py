"""Funding carry and basis on the bundled ETHUSDT data, with planted turns."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from stagectl.data import load_candles, load_funding
from stagectl.domain.carry import SETTLEMENTS_PER_YEAR, scan_carry

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def funding() -> pd.Series:
    return load_funding("ETHUSDT")


def test_carry_is_the_windows_mean_rate_annualised(funding: pd.Series) -> None:
    scan = scan_carry("ETHUSDT", funding, now=NOW)
    upto = funding.loc[:NOW].to_numpy()
    assert scan.as_of == NOW
    assert scan.last_rate == upto[-1]
    assert scan.carry["24h"] == pytest.approx(upto[-3:].mean() * 1095, rel=1e-12)
    assert scan.carry["7d"] == pytest.approx(upto[-21:].mean() * 1095, rel=1e-12)
    assert scan.carry["30d"] == pytest.approx(upto[-90:].mean() * 1095, rel=1e-12)
    assert scan.last_annualised == pytest.approx(upto[-1] * SETTLEMENTS_PER_YEAR)


@pytest.mark.parametrize(("sign", "turn"), [(-1.0, "to_negative"), (1.0, "to_positive")])
def test_a_planted_flip_of_the_last_day_is_a_turn(
    funding: pd.Series, sign: float, turn: str
) -> None:
    planted = funding.loc[:NOW].copy()
    base = -sign * np.abs(planted.to_numpy())
    base[-3:] = sign * 0.0003  # the last three settlements paid the other way, strongly
    planted[:] = base
    scan = scan_carry("ETHUSDT", planted)
    assert scan.turn == turn
    assert ("negative" if sign < 0 else "positive") in scan.note


def test_no_turn_while_both_windows_agree(funding: pd.Series) -> None:
    steady = funding.loc[:NOW].abs() + 1e-6
    assert scan_carry("ETHUSDT", steady).turn is None


def test_a_short_history_has_no_long_windows(funding: pd.Series) -> None:
    scan = scan_carry("ETHUSDT", funding.iloc[:5])
    assert scan.carry["24h"] is not None
    assert scan.carry["7d"] is None and scan.carry["30d"] is None
    assert scan.turn is None


def test_basis_is_the_perp_premium_over_spot_in_bps() -> None:
    perp = load_candles("ETHUSDT")["close"]
    spot = load_candles("ETHUSDT", market="spot")["close"]
    scan = scan_carry("ETHUSDT", load_funding("ETHUSDT"), perp_close=perp, spot_close=spot, now=NOW)
    assert scan.basis is not None
    stamp = pd.Timestamp(NOW)
    expected = (perp[stamp] - spot[stamp]) / spot[stamp] * 10_000
    assert scan.basis.bps == pytest.approx(expected, rel=1e-12)
    week = ((perp - spot) / spot * 10_000).loc[stamp - pd.Timedelta(days=7) : stamp].dropna()
    assert scan.basis.mean_7d_bps == pytest.approx(week.mean(), rel=1e-12)


def test_nothing_before_now_is_an_error(funding: pd.Series) -> None:
    with pytest.raises(ValueError, match="no funding settlement"):
        scan_carry("ETHUSDT", funding, now=datetime(2000, 1, 1, tzinfo=UTC))
