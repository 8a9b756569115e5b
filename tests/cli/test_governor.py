"""stagectl governor: decisions recorded in state, --apply and the rebalance interval."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagectl.state import governor as repo
from stagectl.state.db import open_state
from tests.conftest import Run


@pytest.fixture
def initialised(run: Run, home: Path) -> Path:
    assert run(["init"]).exit_code == 0
    return home / "state" / "stagectl.db"


def test_governor_needs_a_state_database(run: Run) -> None:
    result = run(["governor"])
    assert result.exit_code == 2
    assert "stagectl init" in result.stderr


def test_proposal_is_recorded_but_not_applied(run: Run, initialised: Path) -> None:
    result = run(["governor", "--json"])
    assert result.exit_code == 0, result.stderr
    body = result.json()
    assert body["action"] == "propose"
    assert body["previous_source"] == "baselines"
    assert sum(body["final"].values()) == pytest.approx(1.0)
    for name, score in body["scores"].items():
        assert score["ignored"] == (score["score"] < 0.08)
        if score["ignored"]:
            assert body["target"][name] == body["previous"][name]
    with open_state(initialised) as db:
        assert repo.last_applied(db) is None
        [decision] = repo.decisions(db)
    assert decision.action == "propose"
    assert decision.payload["inputs"]["aggregate_weight"] == 1.15
    assert decision.features_hash == body["inputs_sha256"]


def test_apply_then_refuse_inside_the_interval_then_apply_when_due(
    run: Run, initialised: Path, signed_off: Path
) -> None:
    first = run(["governor", "--apply", "--json"])
    assert first.exit_code == 0, first.stderr
    applied = first.json()
    assert applied["action"] == "apply"

    early = run(["governor", "--apply", "--json", "--now", "2026-05-16T11:19:59Z"])
    assert early.exit_code == 1
    refused = early.json()
    assert refused["action"] == "refuse"
    assert refused["rebalance"]["next_due_at"] == "2026-05-16T11:20:00Z"
    assert "2026-05-16T11:20:00Z" in early.stderr

    due = run(["governor", "--apply", "--json", "--now", "2026-05-16T11:20Z"])
    assert due.exit_code == 0
    second = due.json()
    assert second["previous_source"] == "state"
    assert second["previous"] == pytest.approx(applied["final"])
    with open_state(initialised) as db:
        current = repo.last_applied(db)
        history = repo.decisions(db)
    assert current is not None
    assert current.weights == pytest.approx(second["final"])
    assert [d.action for d in history] == ["apply", "refuse", "apply"]


def test_table_shows_every_strategy(run: Run, initialised: Path) -> None:
    result = run(["governor"])
    assert result.exit_code == 0
    for name in ("trend", "mean_reversion", "vol_target", "cross_exchange"):
        assert name in result.stdout
