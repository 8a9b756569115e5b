"""``regime-analyze`` gives the results frozen before the performance work of issue 13,
item 5 (``tests/regime_fingerprint.py`` says what is compared): the JSON document, the
human output, the exported tables, the regimes and switches per bar, numbers to 1e-12."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.regime_fingerprint import FROZEN, available, differences, fingerprint


@pytest.fixture(scope="module")
def frozen() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(FROZEN.read_text())
    return loaded


@pytest.mark.parametrize(
    "case",
    ["bundled_1h", "one_day_1m", pytest.param("year_1m", marks=pytest.mark.slow)],
)
def test_regime_analyze_matches_the_frozen_fingerprint(
    case: str, frozen: dict[str, Any], tmp_path: Path
) -> None:
    if not available(case):
        pytest.skip("shared SOL 1m data not present")
    assert differences(fingerprint(case, tmp_path), frozen[case]) == []
    assert frozen[case]["json"]["pnl"]["windows"] > 100
    assert len(frozen[case]["json"]["pnl"]["buckets"]["regime"]) >= 2


def test_the_comparison_sees_a_changed_label_and_a_changed_value() -> None:
    base = {"regimes": "ab12", "bars": {"adx": {"sum": 3.0}}}
    assert differences(base, base) == []
    assert differences({"regimes": "ab13", "bars": {"adx": {"sum": 3.0}}}, base) != []
    assert differences({"regimes": "ab12", "bars": {"adx": {"sum": 3.0 + 1e-11}}}, base) != []
