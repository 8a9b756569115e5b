"""walk-forward, cpcv, audit-strategy, consensus: exit codes, --json, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, Run

EXAMPLES = REPO_ROOT / "docs" / "examples"
VOTES = EXAMPLES / "consensus_votes.csv"
CORRELATION = EXAMPLES / "consensus_correlation.csv"
SHORT_WF = ["--train", "60d", "--test", "60d", "--fixed"]


def test_walk_forward_prints_folds_and_their_dispersion(run: Run) -> None:
    result = run(["walk-forward", *SHORT_WF])
    assert result.exit_code == 0, result.stderr
    assert "alt_ensemble walk-forward (rolling): train 60d, purge 5d" in result.stdout
    assert "training: none: the config as is (--fixed)" in result.stdout
    for header in ("Folds", "Across folds", "Stability (OOS Sharpe)"):
        assert header in result.stdout.splitlines()
    assert "ETHUSDT" in result.stdout and "year 2025" in result.stdout


def test_walk_forward_json_is_one_envelope_with_fold_statistics(run: Run) -> None:
    result = run(["walk-forward", *SHORT_WF, "--expanding", "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["kind"] == "walk-forward"
    body = document["body"]
    assert body["settings"]["mode"] == "expanding"
    folds = body["folds"]
    assert body["settings"]["folds"] == len(folds) >= 5
    sharpe = body["summary"]["metrics"]["oos_sharpe"]
    assert set(sharpe) == {"mean", "std", "min", "max", "median", "count"}
    assert sharpe["min"] <= sharpe["median"] <= sharpe["max"]
    assert set(body["summary"]["by_symbol"]) == {"ETHUSDT", "SOLUSDT"}


def test_walk_forward_export_writes_folds_and_oos_curve(run: Run, home: Path) -> None:
    target = home / "wf"
    result = run(["walk-forward", *SHORT_WF, "--export", target])
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["folds.csv", "oos_equity.csv"]
    header = (target / "folds.csv").read_text().splitlines()[0]
    assert header.startswith("fold,train_start,train_end,test_start,test_end,selected")


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--train", "soon"], "--train"),
        (["--test", "0d"], "--test"),
        (["--purge", "-1d"], "--purge"),
        (["--train", "900d"], "--train/--test"),
    ],
)
def test_walk_forward_bad_durations_exit_2(run: Run, args: list[str], where: str) -> None:
    result = run(["walk-forward", "--fixed", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"stagectl: {where}:")
    assert result.stdout == ""


def test_cpcv_reports_paths_distribution_and_pbo(run: Run) -> None:
    result = run(["cpcv", "--folds", "6", "--test-folds", "2", "--json"])
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)["body"]
    assert body["settings"]["splits"] == 15
    assert body["settings"]["paths"] == len(body["paths"]) == 5
    assert set(body["distribution"]["quantiles"]) == {"0.05", "0.25", "0.5", "0.75", "0.95"}
    assert body["pbo"]["configurations"] == 9
    assert 0.0 <= body["pbo"]["pbo"] <= 1.0


def test_cpcv_fixed_says_pbo_is_not_computable(run: Run) -> None:
    result = run(["cpcv", "--folds", "4", "--test-folds", "1", "--fixed"])
    assert result.exit_code == 0, result.stderr
    assert "PBO: not computable (PBO needs at least 2 configurations" in result.stdout
    assert "4 splits, 1 paths" in result.stdout


def test_cpcv_with_test_folds_not_below_folds_exits_2(run: Run) -> None:
    result = run(["cpcv", "--folds", "4", "--test-folds", "4"])
    assert result.exit_code == 2
    assert "--folds/--test-folds" in result.stderr


def test_audit_strategy_prints_the_table_and_exits_1_on_the_bundled_data(run: Run) -> None:
    result = run(["audit-strategy"])
    assert result.exit_code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert "check                                value    bar         result  seed 003 audit" in (
        lines
    )
    rows = [line for line in lines if line.startswith(("nested", "holdout ", "positive"))]
    assert len(rows) == 5
    assert rows[0].endswith("0.701")
    assert "1.116" in rows[1] and "7.60 %" in rows[2] and "0.632" in rows[3]
    assert lines[-1].startswith("verdict: FAIL")


def test_audit_strategy_out_writes_a_signed_report(run: Run, home: Path, hmac_key: str) -> None:
    out = home / "audit.json"
    result = run(["audit-strategy", "--out", out, "--json"])
    assert result.exit_code == 1
    envelope = json.loads(result.stdout)
    assert envelope["kind"] == "audit-strategy"
    assert {"strategy", "table", "verdict"} <= set(envelope["body"])
    assert [row["status"] for row in envelope["body"]["table"]].count("FAIL") >= 1
    assert json.loads(out.read_text())["signature"]["alg"] == "HMAC-SHA256"
    assert run(["report", "verify", out]).exit_code == 0


def test_audit_strategy_out_without_a_key_exits_2(run: Run, home: Path) -> None:
    result = run(["audit-strategy", "--out", home / "audit.json"])
    assert result.exit_code == 2
    assert "STAGECTL_HMAC_KEY" in result.stderr


def test_consensus_on_the_example_gates_and_decides(run: Run) -> None:
    result = run(["consensus", "--votes", VOTES, "--correlation", CORRELATION, "--regime", "TREND"])
    assert result.exit_code == 0, result.stderr
    assert "gated out: mean_revert" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("decision: ")


def test_consensus_json_has_weights_summing_to_one(run: Run) -> None:
    result = run(["consensus", "--votes", VOTES, "--regime", "RANGE", "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    latest = document["latest"]
    assert latest["gated_out"] == ["trend_ema"]
    assert sum(latest["weights"].values()) == pytest.approx(1.0)
    assert document["timestamps"] == 120
    assert [s["action"] for s in document["steps"][:99]] == ["wait"] * 99


def test_consensus_bad_side_names_the_line(run: Run, home: Path) -> None:
    votes = home / "votes.csv"
    votes.write_text(
        "engine,timestamp,side,prob,brier,days_ago,approved_regimes\n"
        "a,2025-01-01T00:00:00Z,buy,0.6,0.2,1,\n"
        "b,2025-01-01T00:00:00Z,up,0.6,0.2,1,\n"
    )
    result = run(["consensus", "--votes", votes])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"stagectl: {votes}:3: side must be")


def test_consensus_missing_correlation_pair_exits_2(run: Run, home: Path) -> None:
    corr = home / "corr.json"
    corr.write_text(json.dumps({"trend_ema": {"trend_ema": 1.0}}))
    result = run(["consensus", "--votes", VOTES, "--correlation", corr])
    assert result.exit_code == 2
    assert "no correlation for engines" in result.stderr


def test_consensus_unknown_regime_exits_2(run: Run) -> None:
    result = run(["consensus", "--votes", VOTES, "--regime", "SIDEWAYS"])
    assert result.exit_code == 2
    assert "--regime" in result.stderr
