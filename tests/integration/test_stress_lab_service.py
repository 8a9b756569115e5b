"""The stress-lab service on the bundled data: historical windows, shocks, positions."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from stagectl.config.home import Home, defaults_dir
from stagectl.data import load_candles
from stagectl.domain.stress import MetricCheck
from stagectl.domain.types import Position
from stagectl.errors import ConfigError, InputError
from stagectl.services.stage6 import stress_lab, stress_verdict
from stagectl.services.stage6.stress_positions import PositionInput, load_positions_file
from stagectl.state.db import open_state
from stagectl.state.ledger import upsert_position
from stagectl.state.runs import Run, start_run
from tests.hostile_yaml import alias_bomb

CALM = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.fixture
def empty_home(tmp_path: Path) -> Home:
    return Home.resolve(tmp_path)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = Home.resolve(tmp_path_factory.mktemp("home"))
    book = home.root / "book.yaml"
    book.write_text("- {symbol: SOLUSDT, qty: 100, entry_price: 150}\n")
    result = stress_lab.run(stress_lab.StressRequest(positions_file=book), home=home)
    assert not result.blocked
    return result.body


def test_historical_worst_24h_fall_is_the_minimum_over_the_data(full_run: dict[str, Any]) -> None:
    scenario = next(s for s in full_run["scenarios"] if s["name"] == "hist_solusdt_24h_down")
    close = load_candles("SOLUSDT")["close"]
    close_time = pd.DatetimeIndex(close.index) + pd.Timedelta(hours=1)
    first = pd.DatetimeIndex(close.index)[0]
    searchable = close[pd.DatetimeIndex(close.index) >= first + pd.Timedelta(days=30)]
    searchable = searchable[
        pd.DatetimeIndex(searchable.index) + pd.Timedelta(hours=1)
        <= pd.Timestamp(full_run["market"]["as_of"])
    ]
    returns = (searchable / searchable.shift(24) - 1.0).dropna() * 100.0
    window = scenario["window"]
    assert window["return_pct"] == pytest.approx(returns.min())
    end = pd.Timestamp(window["end"])
    start = pd.Timestamp(window["start"])
    assert end - start == pd.Timedelta(hours=24)
    by_close = pd.Series(close.to_numpy(), index=close_time)
    assert (by_close[end] / by_close[start] - 1) * 100 == pytest.approx(window["return_pct"])
    assert scenario["price_moves_pct"]["SOLUSDT"] == pytest.approx(window["return_pct"])
    assert window["start"] in scenario["description"]


def test_spread_blowout_multiplies_the_aggregate_spread_by_four(full_run: dict[str, Any]) -> None:
    baseline = full_run["market"]["metrics"]["AGGREGATE"]["spread_bps"]
    scenario = next(s for s in full_run["scenarios"] if s["name"] == "spread_blowout")
    spread = next(c for c in scenario["checks"] if c["metric"] == "spread_bps")
    assert spread["value"] == pytest.approx(4 * baseline)
    assert spread["breached"] == (4 * baseline > 45.0)


def test_liquidation_cost_follows_the_seed_001_cost_model(full_run: dict[str, Any]) -> None:
    scenario = next(s for s in full_run["scenarios"] if s["name"] == "liquidity_crunch")
    impact = scenario["portfolio"]
    mark = full_run["portfolio"]["positions"][0]["mark_price"]
    stressed_price = mark * (1 - 0.04)
    notional = 100 * stressed_price
    spread = impact["stressed_spread_bps"]["SOLUSDT"]
    liquidity = impact["stressed_liquidity_usd"]["SOLUSDT"]
    cost_bps = spread / 2 + math.sqrt(notional / liquidity) * 5 + 5.0
    assert impact["liquidation_cost_usd"] == pytest.approx(notional * cost_bps / 1e4)
    assert impact["mtm_pnl_usd"] == pytest.approx(100 * (stressed_price - mark))
    equity = full_run["portfolio"]["equity_usd"]
    assert equity == pytest.approx(100 * 150 + 100 * (mark - 150))
    expected_margin = (notional / 3.0) / (equity + impact["mtm_pnl_usd"]) * 100
    assert impact["margin_usage_pct"] == pytest.approx(expected_margin)


def test_verdict_lists_exactly_the_breached_checks(full_run: dict[str, Any]) -> None:
    verdict = {s["name"]: s for s in full_run["verdict"]["scenarios"]}
    for scenario in full_run["scenarios"]:
        breached = [c["metric"] for c in scenario["checks"] if c["breached"]]
        assert [b["metric"] for b in verdict[scenario["name"]]["breaches"]] == breached
    assert full_run["verdict"]["breach_count"] == sum(
        len(s["breaches"]) for s in full_run["verdict"]["scenarios"]
    )


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("book.yaml", "positions:\n  - {symbol: ETH/USDT, qty: -2, entry_price: 2500.5}\n"),
        ("book.json", '[{"symbol": "ETHUSDT", "qty": -2, "entry_price": 2500.5}]'),
        ("book.csv", "symbol,qty,entry_price\nETHUSDT,-2,2500.5\n"),
    ],
)
def test_positions_file_formats_read_the_same(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert load_positions_file(path) == [PositionInput("ETHUSDT", -2.0, 2500.5)]


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("book.yaml", "- {symbol: BTCUSDT, qty: 1}\n", "positions[0]"),
        ("book.json", '[{"symbol": "BTCUSDT", "qty": 0, "entry_price": 1}]', "positions[0]"),
        ("book.csv", "symbol,qty\nBTCUSDT,1\n", "book.csv:1"),
        ("book.txt", "BTCUSDT 1 1\n", "book.txt"),
        ("book.yaml", "- {symbol: BTCUSDT, qty: 1, entry_price: 1, side: long}\n", "positions[0]"),
        ("book.yaml", "[" * 990 + "]" * 990, "book.yaml:1: [0][0]"),
        ("book.yaml", alias_bomb(10, key="positions"), "more than 10,000 keys and values"),
        ("book.json", "[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ],
)
def test_bad_positions_files_name_where(tmp_path: Path, name: str, text: str, where: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_positions_file(path)
    assert where in str(caught.value)


def test_positions_default_to_the_live_books_of_the_state_database(empty_home: Home) -> None:
    now = datetime.now(UTC)
    with open_state(empty_home.state_path) as db:
        for run_id, mode, account, symbol in (
            ("live-1", "live", "binanceusdm", "BTCUSDT"),
            ("paper-1", "paper", "paper:paper-1", "ETHUSDT"),
        ):
            start_run(db, Run(run_id, "run-live", mode, now, account=account))
            held = Position(symbol, Decimal("0.25"), Decimal("90000"), account=account)
            upsert_position(db, replace(held, run_id=run_id, updated_at=now))
    request = stress_lab.StressRequest(now=CALM, scenario_names=("blackout",))
    body = stress_lab.run(request, home=empty_home).body
    assert body["portfolio"]["source"] == "state database"
    assert [p["symbol"] for p in body["portfolio"]["positions"]] == ["BTCUSDT"]
    assert body["scenarios"][0]["portfolio"]["gross_notional_usd"] > 0


def test_a_governed_scenario_missing_from_the_scenarios_file_is_a_config_error(
    empty_home: Home,
) -> None:
    text = (defaults_dir() / "stress_scenarios.yaml").read_text()
    path = empty_home.root / "scenarios.yaml"
    path.write_text(text.replace("  blackout:\n", "  blackout_renamed:\n"))
    with pytest.raises(ConfigError) as caught:
        stress_lab.run(stress_lab.StressRequest(scenarios_file=path), home=empty_home)
    assert "blackout" in str(caught.value)


def _check(value: float, limit: float, direction: str = "above") -> MetricCheck:
    breached = math.isnan(value) or (value < limit if direction == "below" else abs(value) > limit)
    return MetricCheck("latency_ms", value, limit, direction, breached)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stressed", "at_limit", "at_base", "cause"),
    [
        # live 160 ms already past 150; the scenario leaves it there: baseline
        (_check(160, 150), _check(160, 150), _check(160, 150), "baseline"),
        # the shock pushes it further (170 > 160): scenario
        (_check(170, 150), _check(160, 150), _check(160, 150), "scenario"),
        # live 100 ms is fine; the shock crosses the limit: scenario
        (_check(250, 150), _check(100, 150), _check(100, 150), "scenario"),
        # a tighter override (90 ms) makes the unchanged live value breach: scenario
        (_check(100, 90), _check(100, 90), _check(100, 150), "scenario"),
        # sentiment: lower is worse
        (
            _check(0.3, 0.5, "below"),
            _check(0.24, 0.5, "below"),
            _check(0.24, 0.5, "below"),
            "baseline",
        ),
        (
            _check(0.1, 0.5, "below"),
            _check(0.24, 0.5, "below"),
            _check(0.24, 0.5, "below"),
            "scenario",
        ),
        # funding by magnitude: -30 is not further past 25 than +30
        (
            _check(-30, 25, "abs_above"),
            _check(30, 25, "abs_above"),
            _check(30, 25, "abs_above"),
            "baseline",
        ),
        # no data at baseline and under the scenario: baseline; a set value: scenario
        (_check(math.nan, 40), _check(math.nan, 40), _check(math.nan, 40), "baseline"),
        (_check(55, 40), _check(math.nan, 40), _check(math.nan, 40), "scenario"),
    ],
)
def test_breach_cause_follows_the_documented_rule(
    stressed: MetricCheck, at_limit: MetricCheck, at_base: MetricCheck, cause: str
) -> None:
    assert stressed.breached
    assert stress_verdict.breach_cause(stressed, at_limit, at_base) == cause


def test_every_baseline_caused_breach_is_on_the_baseline_row(full_run: dict[str, Any]) -> None:
    baseline = full_run["market_baseline"]
    assert baseline["name"] == "baseline"
    assert full_run["verdict"]["market_baseline"]["breaches"] == [
        {k: b[k] for k in ("metric", "value", "limit", "direction", "cause", "symbols")}
        for b in baseline["breaches"]
    ]
    at_baseline = {b["metric"]: b["value"] for b in baseline["breaches"]}
    assert at_baseline  # the bundled data at the default now: sentiment 0.24 < 0.50
    labelled = 0
    for scenario in full_run["scenarios"]:
        for check in scenario["checks"]:
            assert (check["cause"] is None) == (not check["breached"])
            if check["cause"] == "baseline":
                labelled += 1
                assert check["metric"] in at_baseline
    caused = sum(c["cause"] == "scenario" for s in full_run["scenarios"] for c in s["breaches"])
    assert labelled > 0
    assert full_run["verdict"]["scenario_caused_breach_count"] == caused
    assert full_run["verdict"]["breach_count"] == caused + labelled
    assert baseline["portfolio"]["mtm_pnl_usd"] == 0.0


def test_a_scenario_named_baseline_is_a_config_error(empty_home: Home) -> None:
    text = (defaults_dir() / "stress_scenarios.yaml").read_text()
    path = empty_home.root / "scenarios.yaml"
    path.write_text(text.replace("  spread_blowout:\n", "  baseline:\n"))
    with pytest.raises(ConfigError) as caught:
        stress_lab.run(stress_lab.StressRequest(scenarios_file=path), home=empty_home)
    assert "reserved" in str(caught.value)
