"""Seed 002's micro test from the packaged configs, through the CLI in a fresh home:
init -> preflight -> run-live -c config/stage3.yaml (BTC, ETH, SOL, XRP for 24 h) ->
the five artifacts below artifacts.dir -> artifacts analyze -> the rollback plan
(reduce-only, close all, disable), which the loop's next bar obeys -> flat."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from stagectl.config.home import Home
from stagectl.data import load_candles
from stagectl.services.live import run as run_live
from stagectl.services.live.artifacts import ARTIFACT_FILES
from tests.conftest import Run

SYMBOLS = {"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"}
CAPS = {"BTCUSDT": (0.01, 500), "ETHUSDT": (0.1, 300), "SOLUSDT": (10, 100), "XRPUSDT": (200, 100)}
PROFILE = ["run-live", "-c", "config/stage3.yaml"]


def _artifact(summary: dict[str, Any], name: str) -> Any:
    return json.loads((Path(summary["artifacts"]) / name).read_text())


def _data_end(*symbols: str) -> datetime:
    """The last bar every one of ``symbols`` has in the bundled data."""
    end: datetime = min(load_candles(s).index[-1] for s in symbols).to_pydatetime()
    return end


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


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


def _first_stop_distance(orders: list[dict[str, Any]], symbol: str) -> Decimal:
    """The first protective stop of ``symbol`` relative to the entry it protects: the
    fill price of the first entry, signed so that a stop on the losing side is positive."""
    ordered = sorted(orders, key=lambda o: o["recorded_at"])
    entry = next(o for o in ordered if o["symbol"] == symbol and o["fills"])
    stop = next(o for o in ordered if o["symbol"] == symbol and o["type"] == "stop_limit")
    assert stop["side"] != entry["side"]
    price = Decimal(entry["fills"][0]["price"])
    move = (Decimal(stop["stop_price"]) - price) / price
    return move if entry["side"] == "sell" else -move


@pytest.fixture
def micro_test(run: Run, home: Path) -> dict[str, Any]:
    """A fresh home, preflight passed, and the 24-hour paper micro test run."""
    assert run(["init"]).exit_code == 0
    preflight = run(["preflight", "--json"])
    assert preflight.exit_code == 0, preflight.stdout
    result = run([*PROFILE, "--json"])
    assert result.exit_code == 0, result.stderr
    summary: dict[str, Any] = result.json()
    return summary


def test_preflight_passes_right_after_init(run: Run, home: Path) -> None:
    assert run(["init"]).exit_code == 0
    assert (home / "artifacts" / "stage3").is_dir()
    result = run(["preflight", "--json"])
    assert result.exit_code == 0, result.stdout
    statuses = {c["check"]: c["status"] for c in result.json()["checks"]}
    assert statuses["artifact directories"] == "PASS"
    assert "FAIL" not in statuses.values()


def test_preflight_without_init_says_how_to_create_the_artifact_directories(
    run: Run, home: Path
) -> None:
    result = run(["preflight", "--json"])
    assert result.exit_code == 1
    check = next(c for c in result.json()["checks"] if c["check"] == "artifact directories")
    assert check["status"] == "FAIL"
    assert "run `stagectl init`" in check["reason"]
    assert f"mkdir -p {home / 'artifacts' / 'stage3'} {home / 'logs'}" in check["reason"]


def test_the_seed_002_runbook_from_preflight_to_a_flat_book(run: Run, home: Path) -> None:
    assert run(["init"]).exit_code == 0
    assert run(["preflight"]).exit_code == 0

    test = run([*PROFILE, "--json"])
    assert test.exit_code == 0, test.stderr
    summary = test.json()
    assert (summary["status"], summary["bars"]) == ("completed", 24)
    assert summary["last_bar"] == _stamp(_data_end(*SYMBOLS))
    assert {s for s, qty in summary["positions"].items() if Decimal(qty)} == SYMBOLS
    directory = home / "artifacts" / "stage3" / summary["run_id"]
    assert summary["artifacts"] == str(directory)
    assert sorted(p.name for p in directory.iterdir()) == sorted(ARTIFACT_FILES)

    analyzed = run(["artifacts", "analyze", summary["run_id"], "--json"])
    assert analyzed.exit_code == 0, analyzed.stdout
    assert analyzed.json()["directory"] == str(directory)
    assert [a["answer"] for a in analyzed.json()["answers"]] == ["yes"] * 5

    reduce_only = run(["trading", "reduce-only", "--paper", "--reason", "rollback drill"])
    assert reduce_only.exit_code == 0
    closed = run(["emergency-close", "--paper", "--yes", "--json"])
    assert closed.exit_code == 0, closed.stdout
    document = closed.json()
    account = f"paper:{summary['run_id']}"
    assert {p["symbol"] for p in document["positions_before"] if p["account"] == account} == SYMBOLS
    assert {o["symbol"] for o in document["open_orders_before"]} == SYMBOLS  # the stop-limits
    assert document["trading_state_before"] == "REDUCE_ONLY"
    assert run(["trading", "disable", "--paper", "--reason", "rollback drill"]).exit_code == 0

    assert document["flat"] is True and document["residual_positions"] == []
    again = run(["emergency-close", "--paper", "--yes", "--json"]).json()
    assert again["nothing_to_do"] is True and again["positions_before"] == []
    status = run(["trading", "status", "--json"]).json()
    assert status["modes"]["paper"]["trading_state"] == "HALTED"
    assert status["directives"] == []  # the profile's run has no in-loop guard


def test_the_profile_trades_four_symbols_within_the_seed_002_limits(
    micro_test: dict[str, Any],
) -> None:
    summary = micro_test
    assert summary["config"] == "config/stage3_strategy.yaml"
    assert summary["stage3"] == "config/stage3.yaml"
    assert summary["max_abs_drift_usd"] <= 0.01
    orders = _artifact(summary, "execution_logs.json")["orders"]
    for symbol, qty in summary["positions"].items():
        max_size, max_notional = CAPS[symbol]
        assert 0 < abs(float(qty)) <= max_size
        for notional in _entry_notionals(orders, symbol):
            assert notional <= max_notional + 1e-6
    sized = _artifact(summary, "sized_down_events.json")
    assert sized["max_impact_bps"] == 50
    assert {e["symbol"] for e in sized["events"] if e["code"] == "POSITION_LIMIT"} == SYMBOLS
    stops = [o for o in orders if o["type"] == "stop_limit"]
    assert {o["symbol"] for o in stops} == SYMBOLS
    assert all(o["time_in_force"] == "GTC" and o["reduce_only"] for o in stops)
    for symbol in SYMBOLS:
        assert _first_stop_distance(orders, symbol) == pytest.approx(
            Decimal("0.02"), abs=Decimal("1e-6")
        )
    margin = _artifact(summary, "margin_snapshots.json")
    assert (margin["warning_pct"], margin["critical_pct"]) == (20, 50)
    assert len(margin["snapshots"]) == 24
    assert max(s["utilization_pct"] for s in margin["snapshots"]) < 10  # seed 002: < 10 %


def test_analyze_still_finds_the_artifacts_of_a_run_started_before_artifacts_dir(
    micro_test: dict[str, Any], run: Run, home: Path
) -> None:
    legacy = home / "artifacts" / micro_test["run_id"]
    shutil.move(micro_test["artifacts"], legacy)
    analyzed = run(["artifacts", "analyze", micro_test["run_id"], "--json"])
    assert analyzed.exit_code == 0, analyzed.stdout
    assert analyzed.json()["directory"] == str(legacy)


def test_a_rollback_mid_test_is_what_the_resumed_loop_trades_on(run: Run, home: Path) -> None:
    """Stopped after 12 of its 24 bars (as by SIGTERM), rolled back from the CLI, then
    resumed: the loop reads the flattened paper book and the HALTED state, sends nothing,
    and still reconciles with the closes emergency-close made in its account."""
    assert run(["init"]).exit_code == 0
    bars: list[datetime] = []
    first = run_live.run(
        run_live.RunLiveRequest(config=Path("config/stage3.yaml")),
        home=Home.resolve(),
        on_step=lambda data, _: bars.append(data.ts),
        should_stop=lambda: len(bars) >= 12,
    )
    assert (first.status, first.bars) == ("aborted", 12)
    assert set(first.positions) == SYMBOLS

    assert run(["trading", "reduce-only", "--paper", "--reason", "drill"]).exit_code == 0
    closed = run(["emergency-close", "--paper", "--yes", "--json"])
    assert closed.exit_code == 0 and closed.json()["flat"] is True
    assert run(["trading", "disable", "--paper", "--reason", "drill"]).exit_code == 0

    resumed = run([*PROFILE, "--json"])
    assert resumed.exit_code == 0, resumed.stderr
    summary = resumed.json()
    assert summary["run_id"] == first.run_id and summary["resumed"] is True
    assert summary["bars"] == 12 and summary["first_bar"] == _stamp(bars[-1] + timedelta(hours=1))
    assert summary["orders_sent"] == 0 and summary["positions"] == {}
    assert summary["trading_state"] == "HALTED"
    assert summary["orders_denied"]["TRADING_HALTED"] >= 12
    assert summary["max_abs_drift_usd"] <= 0.01
    assert "paper trading state: HALTED" in resumed.stderr
    analyzed = run(["artifacts", "analyze", first.run_id, "--json"]).json()
    assert analyzed["answers"][0]["answer"] == "yes"  # reconciliation balanced throughout


def test_reduce_only_before_the_test_lets_nothing_open(run: Run, home: Path) -> None:
    assert run(["init"]).exit_code == 0
    assert run(["trading", "reduce-only", "--paper", "--reason", "drill"]).exit_code == 0
    result = run([*PROFILE, "--json"])
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert summary["fills"] == 0 and summary["positions"] == {}
    denied = _artifact(summary, "rejection_breakdown.json")["denied_by_policy"]
    assert denied["REDUCE_ONLY"] >= 4


def test_a_profile_with_another_policy_file_is_refused(run: Run, home: Path) -> None:
    assert run(["init"]).exit_code == 0
    other = home / "config" / "stage3-copy.yaml"
    other.write_text((home / "config" / "stage3.yaml").read_text())
    result = run([*PROFILE, "--stage3", other])
    assert result.exit_code == 2
    assert result.stderr.startswith("stagectl: --stage3:") and len(result.stderr.splitlines()) == 1


def test_a_profile_without_a_run_section_names_the_file(run: Run, home: Path) -> None:
    assert run(["init"]).exit_code == 0
    profile = home / "config" / "stage3.yaml"
    text = profile.read_text()
    profile.write_text(text[: text.index("\nrun:")] + "\n" + text[text.index("\nsymbols:") :])
    result = run(PROFILE)
    assert result.exit_code == 2
    assert "config/stage3.yaml" in result.stderr and "run: missing" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_stage3_strategy_has_no_audit_so_audit_strategy_says_so(run: Run, home: Path) -> None:
    assert run(["init"]).exit_code == 0
    result = run(["audit-strategy", "-c", "config/stage3_strategy.yaml"])
    assert result.exit_code == 2
    assert "stage3_strategy.yaml" in result.stderr and "audit" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_profile_supplies_duration_and_stop_limits_unless_the_flags_say_otherwise(
    home: Path,
) -> None:
    shipped = Home.resolve()
    request = run_live.RunLiveRequest(config=Path("config/stage3.yaml"))
    (home / "config").mkdir()
    for name in ("stage3.yaml", "stage3_strategy.yaml"):
        shutil.copy(Path(__file__).parents[2] / "config" / name, home / "config" / name)
    resolved, strategy, _, stage3, source = run_live.resolve_configs(request, shipped)
    assert (resolved.duration, resolved.stop_limits) == (timedelta(hours=24), True)
    assert [s.symbol for s in strategy.sleeves] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    assert strategy.guard.enabled is False
    assert source.path.resolve() == home / "config" / "stage3.yaml"
    assert stage3.run is not None and stage3.run.strategy == "stage3_strategy.yaml"
    explicit = run_live.RunLiveRequest(
        config=Path("config/stage3.yaml"), duration=timedelta(hours=6), stop_limits=False
    )
    resolved, *_ = run_live.resolve_configs(explicit, shipped)
    assert (resolved.duration, resolved.stop_limits) == (timedelta(hours=6), False)
    plain, *_ = run_live.resolve_configs(run_live.RunLiveRequest(), shipped)
    assert (plain.duration, plain.stop_limits) == (None, False)
