"""stagectl optimize: a candidates file or the latest governor decision -> weights."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import Run

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "optimizer_candidates.yaml"


def test_example_file_prints_weights_terms_and_slacks(run: Run) -> None:
    result = run(["optimize", str(EXAMPLE)])
    assert result.exit_code == 0, result.stderr
    for text in ("funding_carry", "HHI <= max_hhi", "exposure <= risk_budget", "objective"):
        assert text in result.stdout
    assert not re.search(r"-0\.0+(?![0-9])", result.stdout), "a negative zero is printed"


def test_json_is_one_report_document(run: Run) -> None:
    result = run(["optimize", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["kind"] == "optimize"
    body = doc["body"]
    assert sum(w["weight"] for w in body["weights"]) == pytest.approx(1.0)
    assert body["hhi"] <= 0.25 + 1e-9
    terms = body["objective"]
    assert terms["total"] == pytest.approx(
        terms["edge"] - terms["turnover"] - terms["concentration"]
    )
    assert {c["name"] for c in body["constraints"]} >= {"HHI <= max_hhi", "cash >= cash_buffer"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("candidates: []\n", "candidates"),
        ("candidates:\n  - {name: a, edge: 0.1, confidence: 1.5}\n", "confidence"),
        ("candidates:\n  - {name: a, edge: .nan, confidence: 1}\n", "edge"),
        (
            "candidates:\n  - {name: a, edge: 0.1, confidence: 1}\n"
            "  - {name: a, edge: 0.2, confidence: 1}\n",
            "unique",
        ),
        (
            "candidates:\n  - {name: a, edge: 0.1, confidence: 1, weight: 0.8}\n"
            "  - {name: b, edge: 0.2, confidence: 1, weight: 0.8}\n",
            "sum to",
        ),
        ("candidates:\n  - {name: a, edge: 0.1, confidence: 1}\nparams: {max_hhi: 0}\n", "max_hhi"),
    ],
)
def test_bad_candidates_name_file_and_field(
    run: Run, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    result = run(["optimize", str(path)])
    assert result.exit_code == 2
    assert str(path) in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_from_governor_needs_a_decision(run: Run) -> None:
    assert run(["init"]).exit_code == 0
    result = run(["optimize", "--from-governor"])
    assert result.exit_code == 2
    assert "stagectl governor" in result.stderr


def test_from_governor_weights_the_scored_strategies(run: Run) -> None:
    assert run(["init"]).exit_code == 0
    governor = run(["governor", "--json"])
    assert governor.exit_code == 0, governor.stderr
    scores = governor.json()["scores"]
    result = run(["optimize", "--from-governor", "--json"])
    assert result.exit_code == 0, result.stderr
    body = result.json()["body"]
    assert body["source"].startswith("governor decision ")
    names = {w["name"] for w in body["weights"]}
    assert names == {name for name, s in scores.items() if not s["ignored"]}
    assert sum(w["weight"] for w in body["weights"]) == pytest.approx(1.0)


def test_file_and_governor_together_is_usage_error(run: Run) -> None:
    result = run(["optimize", str(EXAMPLE), "--from-governor"])
    assert result.exit_code == 2
