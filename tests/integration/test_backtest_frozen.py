"""The backtest service's results on the bundled data are those frozen before the
performance work of issue 13 (``tests/backtest_fingerprint.py`` says what is compared)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stagectl.config.home import Home
from stagectl.services.research import backtest as service
from tests.backtest_fingerprint import FROZEN, SCENARIOS, Scenario, differences, fingerprint


@pytest.fixture(scope="module")
def frozen() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(FROZEN.read_text())
    return loaded


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_results_match_the_frozen_fingerprint_to_1e_12(
    scenario: Scenario, frozen: dict[str, Any], tmp_path: Any
) -> None:
    run = service.run(scenario.request, home=Home.resolve(tmp_path))
    assert differences(fingerprint(run), frozen[scenario.name]) == []


def test_the_comparison_sees_a_change_in_one_bar() -> None:
    base = {"series": {"equity": {"samples": [1.0, 2.0], "sum": 3.0}}}
    moved = {"series": {"equity": {"samples": [1.0, 2.0 + 1e-9], "sum": 3.0}}}
    assert differences(moved, base) == [".series.equity.samples[1]: 2.000000001 != 2.0"]
    assert differences(base, base) == []
