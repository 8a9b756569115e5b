"""``risk-guard --replay`` on the bundled data gives the results frozen before the
performance work of issue 13, item 3 (``tests/replay_fingerprint.py`` says what is
compared): actions, triggers, equity and decisions, numbers to 1e-9."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stagectl.domain.guard_replay import replay
from tests.replay_fingerprint import EVALUATIONS, FROZEN, bundled, differences, fingerprint


@pytest.fixture(scope="module")
def frozen() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(FROZEN.read_text())
    return loaded


@pytest.mark.parametrize("evaluation", EVALUATIONS)
def test_the_bundled_replay_matches_the_frozen_fingerprint_to_1e_9(
    evaluation: str, frozen: dict[str, Any]
) -> None:
    sleeves, config, costs = bundled()
    result = replay(sleeves, config, costs=costs, evaluation=evaluation)
    assert differences(fingerprint(result), frozen[evaluation]) == []
    assert len(frozen[evaluation]["actions"]) > 20
    assert len(frozen[evaluation]["triggers"]) > 100


def test_the_comparison_sees_a_moved_trigger_and_a_changed_value() -> None:
    base = {"triggers": [["2024-03-01T00:00:00+00:00", "dd", 8.5]], "equity": {"sum": 3.0}}
    moved = {"triggers": [["2024-03-01T01:00:00+00:00", "dd", 8.5]], "equity": {"sum": 3.0}}
    changed = {
        "triggers": [["2024-03-01T00:00:00+00:00", "dd", 8.5]],
        "equity": {"sum": 3.0 + 1e-8},
    }
    assert differences(base, base) == []
    assert differences(moved, base) != []
    assert differences(changed, base) == [".equity.sum: 3.00000001 != 3.0"]
