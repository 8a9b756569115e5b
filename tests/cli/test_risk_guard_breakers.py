"""`stagectl risk-guard --replay --breakers [--preset NAME]`."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run

WINDOW = ["--replay-start", "2025-06-01", "--replay-end", "2025-09-30"]


def _replay(run: Run, *extra: str) -> dict[str, Any]:
    result = run(["risk-guard", "--replay", *WINDOW, *extra, "--json"])
    assert result.exit_code == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_breakers_scale_both_runs_like_backtest_breakers(run: Run, home: Path) -> None:
    plain = _replay(run)["body"]
    document = _replay(run, "--breakers")
    body = document["body"]
    assert "breakers" not in plain and plain["summary"]["breakers_applied"] is False
    assert {"summary", "triggers", "actions", "breakers"} <= set(body)
    section = body["breakers"]
    assert body["summary"]["breakers_applied"] is True
    assert body["summary"]["breaker_firings"] == len(section["firings"]) > 0
    assert section["applied_to"] == "guarded and unguarded"
    # without breakers: the plain replay's unguarded strategy
    assert section["without_breakers"]["total_return"] == pytest.approx(
        plain["summary"]["unguarded"]["total_return"]
    )
    # the unguarded replay with breakers is `backtest --breakers` on the same window
    backtest = run(
        ["backtest", "--start", "2025-06-01", "--end", "2025-09-30", "--breakers", "--json"]
    )
    assert backtest.exit_code == 0, backtest.stderr
    metrics = json.loads(backtest.stdout)["body"]["metrics"]
    assert body["summary"]["unguarded"]["total_return"] == pytest.approx(metrics["total_return"])
    assert section["firing_counts"] == metrics["breakers"]["firing_counts"]


def test_a_preset_replaces_the_daily_stop(run: Run, home: Path) -> None:
    section = _replay(run, "--preset", "conservative")["body"]["breakers"]
    assert section["preset"] == "conservative"
    assert section["settings"]["daily_drawdown_stop_pct"] == 1.5


def test_human_output_lists_breaker_firings_beside_the_triggers(run: Run, home: Path) -> None:
    result = run(["risk-guard", "--replay", *WINDOW, "--breakers"])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.index("Triggers") < out.index("Breaker firings") < out.index("Guard actions")
    assert "applied to both guarded and unguarded" in out
    assert "Guarded vs unguarded (both with the circuit breakers)" in out


def test_export_writes_breakers_csv(run: Run, home: Path) -> None:
    export = home / "replay"
    document = _replay(run, "--breakers", "--export", str(export))
    with (export / "breakers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["breaker"] for r in rows] == [
        f["breaker"] for f in document["body"]["breakers"]["firings"]
    ]
    assert (export / "triggers.csv").is_file()


def test_breakers_without_replay_or_an_unknown_preset_exit_2(run: Run, home: Path) -> None:
    assert run(["risk-guard", "--breakers", "--dry-run"]).exit_code == 2
    unknown = run(["risk-guard", "--replay", *WINDOW, "--preset", "reckless"])
    assert unknown.exit_code == 2
    assert "reckless" in unknown.stderr
