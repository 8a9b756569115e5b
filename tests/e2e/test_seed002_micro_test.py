"""Seed 002's micro test and rollback plan as docs/operations.md gives them, through
the installed stagectl in a fresh home."""

from __future__ import annotations

from decimal import Decimal

from stagectl.services.live.artifacts import ARTIFACT_FILES
from tests.e2e.conftest import Operator

SYMBOLS = {"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"}
WHY = ("--reason", "stage3 rollback")


def test_preflight_micro_test_artifacts_analyze_then_rollback_to_flat(
    operator: Operator,
) -> None:
    checks = operator("preflight", "--json").json()["checks"]
    assert {c["status"] for c in checks} <= {"PASS", "SKIP"}

    summary = operator("run-live", "-c", "config/stage3.yaml", "--json").json()
    assert (summary["status"], summary["bars"]) == ("completed", 24)
    assert {s for s, qty in summary["positions"].items() if Decimal(qty)} == SYMBOLS
    run_id = summary["run_id"]
    artifacts = operator.home / "artifacts" / "stage3" / run_id
    assert sorted(p.name for p in artifacts.iterdir()) == sorted(ARTIFACT_FILES)

    answers = operator("artifacts", "analyze", run_id, "--json").json()["answers"]
    assert [a["answer"] for a in answers] == ["yes"] * 5

    operator("trading", "reduce-only", "--paper", *WHY)
    closed = operator("emergency-close", "--paper", "--yes", "--json").json()
    assert {p["symbol"] for p in closed["positions_before"]} == SYMBOLS
    assert closed["flat"] and closed["residual_positions"] == []
    assert closed["trading_state_after"] == "HALTED"
    operator("trading", "disable", "--paper", *WHY)
    status = operator("trading", "status", "--json").json()["modes"]
    assert status["paper"]["trading_state"] == "HALTED"
    assert status["live"]["trading_state"] == "ACTIVE"
    again = operator("emergency-close", "--paper", "--dry-run", "--json").json()
    assert again["nothing_to_do"] and again["positions_before"] == []
