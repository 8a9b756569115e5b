"""Seed 002's micro test from the packaged configs, through the CLI in a fresh home:
init -> preflight -> run-live -c config/stage3.yaml (BTC, ETH, SOL, XRP for 24 h) ->
the five artifacts under artifacts.dir -> artifacts analyze -> the rollback plan, which
the next run of the loop obeys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stagectl.services.live.artifacts import ARTIFACT_FILES
from tests.conftest import Run

SYMBOLS = {"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"}
CAPS = {"BTCUSDT": (0.01, 500), "ETHUSDT": (0.1, 300), "SOLUSDT": (10, 100), "XRPUSDT": (200, 100)}


def _artifact(summary: dict[str, Any], name: str) -> Any:
    return json.loads((Path(summary["artifacts"]) / name).read_text())


def _entry_notionals(orders: list[dict[str, Any]], symbol: str) -> list[float]:
    """After each filled entry of ``symbol``, the position's notional at the price the
    order was sized at (the caps bound exactly that)."""
    position, notionals = 0.0, []
    for order in sorted(orders, key=lambda o: o["updated_at"]):
        if order["symbol"] != symbol:
            continue
        sign = 1.0 if order["side"] == "buy" else -1.0
        position += sign * sum(float(fill["qty"]) for fill in order["fills"])
        if order["type"] == "market" and order["fills"] and not order["reduce_only"]:
            notionals.append(abs(position) * float(order["price"]))
    assert notionals, f"{symbol} never entered"
    return notionals


@pytest.fixture
def micro_test(run: Run, home: Path) -> dict[str, Any]:
    """A fresh home, preflight passed, and the 24-hour paper micro test run."""
    assert run(["init"]).exit_code == 0
    preflight = run(["preflight", "--json"])
    assert preflight.exit_code == 0, preflight.stdout
    result = run(["run-live", "-c", "config/stage3.yaml", "--json"])
    assert result.exit_code == 0, result.stderr
    summary: dict[str, Any] = result.json()
    return summary


def test_preflight_passes_right_after_init(run: Run, home: Path) -> None:
    assert run(["init"]).exit_code == 0
    result = run(["preflight", "--json"])
    assert result.exit_code == 0, result.stdout
    statuses = {c["check"]: c["status"] for c in result.json()["checks"]}
    assert statuses["artifact directories"] == "PASS"
    assert "FAIL" not in statuses.values()


def test_preflight_without_init_says_how_to_create_the_artifact_directories(run: Run) -> None:
    result = run(["preflight", "--json"])
    assert result.exit_code == 1
    check = next(c for c in result.json()["checks"] if c["check"] == "artifact directories")
    assert check["status"] == "FAIL"
    assert "stagectl init" in check["reason"] and "mkdir -p" in check["reason"]
    assert "artifacts/stage3" in check["reason"]


def test_the_profile_trades_four_symbols_for_24_hours_within_the_seed_caps(
    micro_test: dict[str, Any], home: Path
) -> None:
    summary = micro_test
    assert summary["status"] == "completed" and summary["bars"] == 24
    assert summary["config"].endswith("stage3_strategy.yaml")
    assert set(summary["positions"]) == SYMBOLS
    orders = _artifact(summary, "execution_logs.json")["orders"]
    for symbol, qty in summary["positions"].items():
        max_size, max_notional = CAPS[symbol]
        assert 0 < abs(float(qty)) <= max_size
        for notional in _entry_notionals(orders, symbol):
            assert notional <= max_notional + 1e-6
    assert summary["max_abs_drift_usd"] <= 0.01
    margin = _artifact(summary, "margin_snapshots.json")
    assert (margin["warning_pct"], margin["critical_pct"]) == (20, 50)
    assert max(s["utilization_pct"] for s in margin["snapshots"]) < 10
    sized = _artifact(summary, "sized_down_events.json")
    assert sized["max_impact_bps"] == 50
    assert {e["symbol"] for e in sized["events"] if e["code"] == "POSITION_LIMIT"} == SYMBOLS
    stops = [o for o in orders if o["type"] == "stop_limit"]
    assert {o["symbol"] for o in stops} == SYMBOLS
    assert all(o["time_in_force"] == "GTC" and o["reduce_only"] for o in stops)


def test_the_five_artifacts_go_below_artifacts_dir_and_analyze_finds_them(
    micro_test: dict[str, Any], run: Run, home: Path
) -> None:
    directory = Path(micro_test["artifacts"])
    assert directory == home / "artifacts" / "stage3" / micro_test["run_id"]
    assert sorted(p.name for p in directory.iterdir()) == sorted(ARTIFACT_FILES)
    analyzed = run(["artifacts", "analyze", micro_test["run_id"], "--json"])
    assert analyzed.exit_code == 0, analyzed.stdout
    body = analyzed.json()
    assert body["directory"] == str(directory)
    assert [a["answer"] for a in body["answers"]] == ["yes"] * 5


def test_the_rollback_plan_closes_all_four_and_the_next_run_obeys_it(
    micro_test: dict[str, Any], run: Run
) -> None:
    assert run(["trading", "reduce-only", "--paper", "--reason", "drill"]).exit_code == 0
    closed = run(["emergency-close", "--paper", "--yes", "--json"])
    assert closed.exit_code == 0, closed.stdout
    document = closed.json()
    account = f"paper:{micro_test['run_id']}"
    assert {p["symbol"] for p in document["positions_before"] if p["account"] == account} == SYMBOLS
    assert {o["symbol"] for o in document["open_orders_before"]} == SYMBOLS  # the stop-limits
    assert document["flat"] is True and document["residual_positions"] == []
    assert run(["trading", "disable", "--paper", "--reason", "drill"]).exit_code == 0
    status = run(["trading", "status", "--json"]).json()
    assert status["modes"]["paper"]["trading_state"] == "HALTED"
    again = run(["run-live", "-c", "config/stage3.yaml", "--new-run", "--json"])
    assert again.exit_code == 0, again.stderr
    halted = again.json()
    assert halted["orders_sent"] == 0 and halted["fills"] == 0
    assert all(float(qty) == 0 for qty in halted["positions"].values())
    breakdown = _artifact(halted, "rejection_breakdown.json")
    assert breakdown["denied_by_policy"] == {"TRADING_HALTED": breakdown["orders_decided"]}
    denied = _artifact(halted, "execution_logs.json")["orders"]
    assert {o["symbol"] for o in denied} == SYMBOLS
    assert {o["status"] for o in denied} == {"denied"}


def test_reduce_only_lets_the_loop_close_but_never_open(run: Run, home: Path) -> None:
    assert run(["init"]).exit_code == 0
    assert run(["trading", "reduce-only", "--paper", "--reason", "drill"]).exit_code == 0
    result = run(["run-live", "-c", "config/stage3.yaml", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert summary["fills"] == 0
    breakdown = _artifact(summary, "rejection_breakdown.json")
    assert breakdown["denied_by_policy"]["REDUCE_ONLY"] >= 4


def test_a_profile_with_another_policy_file_is_refused(run: Run, home: Path) -> None:
    assert run(["init"]).exit_code == 0
    result = run(["run-live", "-c", "config/stage3.yaml", "--stage3", "config/stage3.yaml"])
    assert result.exit_code == 2
    assert result.stderr.startswith("stagectl: --stage3:") and len(result.stderr.splitlines()) == 1


def test_a_profile_without_a_run_section_names_the_file(run: Run, home: Path) -> None:
    assert run(["init"]).exit_code == 0
    profile = home / "config" / "stage3.yaml"
    text = profile.read_text()
    start = text.index("\nrun:")
    end = text.index("\nsymbols:")
    profile.write_text(text[:start] + "\n" + text[end:])
    result = run(["run-live", "-c", "config/stage3.yaml"])
    assert result.exit_code == 2
    assert "config/stage3.yaml" in result.stderr and "run: missing" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_stage3_strategy_has_no_audit_so_audit_strategy_says_so(run: Run, home: Path) -> None:
    assert run(["init"]).exit_code == 0
    result = run(["audit-strategy", "-c", "config/stage3_strategy.yaml"])
    assert result.exit_code == 2
    assert "stage3_strategy.yaml" in result.stderr and "audit" in result.stderr
