"""A new live run's recorded parameters say what the run will do."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from stagectl.config.home import Home
from stagectl.config.loader import load_strategy
from stagectl.services.live.exchange import live_params
from stagectl.services.live.run import RunLiveRequest


class _FlatAccount:
    """An account holding nothing but 10,000 USDT."""

    def positions(self) -> list[object]:
        return []

    def balances(self) -> list[object]:
        return [SimpleNamespace(asset="USDT", total=Decimal("10000"))]


class _At:
    def __init__(self, when: datetime) -> None:
        self._when = when

    def now(self) -> datetime:
        return self._when


@pytest.mark.parametrize("stop_limits", [True, False])
def test_live_params_record_the_stop_limits_the_run_asked_for(
    stop_limits: bool, tmp_path: Path
) -> None:
    config, _ = load_strategy(Home(root=tmp_path))
    request = RunLiveRequest(live=True, stop_limits=stop_limits)
    clock = _At(datetime(2026, 3, 2, 16, 30, tzinfo=UTC))

    params = live_params(request, config, _FlatAccount(), clock)

    assert params["stop_limits"] is stop_limits
    assert params["initial_equity"] == "10000"
