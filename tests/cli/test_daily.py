"""`stagectl daily`: seed 001's 02:00 chain on a paper home (ingest skipped, the bundled
sample), with a champion and a challenger compared, and stopped at a failing step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stagectl.data.bundled import bundled_datasets
from tests.conftest import Run

DATASETS = len(bundled_datasets())
"""The bundled sample's datasets, every one of which the check step reads."""

STEPS = ["ingest", "check", "walk-forward", "compare"]


@pytest.fixture
def desk(run: Run, home: Path) -> Path:
    """An initialised home (logs/, metrics/, reports/)."""
    assert run(["init", str(home)]).exit_code == 0
    return home


def _gauges(path: Path) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(path.read_text())
        for sample in family.samples
    }


def _log(desk: Path) -> list[dict[str, Any]]:
    lines = (desk / "logs" / "daily.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_paper_home_runs_the_chain_on_the_bundled_data_and_says_what_it_skipped(
    run: Run, desk: Path
) -> None:
    out, prom = desk / "reports" / "daily-latest.json", desk / "metrics" / "daily.prom"
    result = run(["daily", "--out", out, "--unsigned", "--metrics-file", prom, "--json"])
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert [s["step"] for s in doc["steps"]] == STEPS
    assert [s["status"] for s in doc["steps"]] == ["SKIP", "PASS", "PASS", "SKIP"]
    ingest, check, walk, compare = doc["steps"]
    assert "no exchange configured" in ingest["reason"] and "bundled" in ingest["reason"]
    assert check["details"]["datasets"] == DATASETS and check["details"]["integrity_failed"] == []
    assert check["details"]["outliers"] > 0  # governance acted: counted, the chain goes on
    assert walk["details"]["folds"] > 0 and walk["details"]["mean_oos_sharpe"] is not None
    assert "no champion and challenger" in compare["reason"]
    assert doc["completed"] and doc["failed_step"] is None and doc["verdict"] is None
    assert json.loads(out.read_text())["body"] == doc
    gauges = _gauges(prom)
    assert gauges["stagectl_command_exit_code"] == 0
    assert (gauges["stagectl_checks_passed"], gauges["stagectl_checks_skipped"]) == (2, 2)
    assert "stagectl_daily_challenger_promoted" not in gauges
    steps = [line["fields"] for line in _log(desk) if line["event"] == "step"]
    assert [(s["step"], s["status"]) for s in steps] == list(
        zip(STEPS, ["SKIP", "PASS", "PASS", "SKIP"], strict=True)
    )


def test_the_champion_vs_challenger_verdict_is_recorded_and_is_not_a_failure(
    run: Run, desk: Path
) -> None:
    for run_id, scale in (("champion", "1.0"), ("challenger", "3.0")):
        recorded = run(
            [
                "shadow",
                "record-backtest",
                "--run-id",
                run_id,
                "--start",
                "2025-01-01",
                "--end",
                "2025-06-30",
                "--cost-multiplier",
                scale,
            ]
        )
        assert recorded.exit_code == 0, recorded.stderr
    prom = desk / "metrics" / "daily.prom"
    env = {"STAGECTL_DAILY_CHAMPION": "champion", "STAGECTL_DAILY_CHALLENGER": "challenger"}
    result = run(["daily", "--metrics-file", prom, "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["steps"][-1]["status"] == "PASS"
    verdict = doc["verdict"]
    assert (verdict["champion"], verdict["challenger"]) == ("champion", "challenger")
    # the same costs tripled cannot beat the champion: DO NOT PROMOTE, with its reasons
    assert verdict["promote"] is False and verdict["reasons"]
    assert _gauges(prom)["stagectl_daily_challenger_promoted"] == 0
    (logged,) = [line["fields"] for line in _log(desk) if line["event"] == "verdict"]
    assert logged["promote"] is False


def test_the_chain_stops_at_the_first_failing_step_and_names_it(
    run: Run, desk: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "binance_perp_ETHUSDT_1h_ohlcv.csv").write_text("timestamp,open\nnot a time,1\n")
    out, prom = desk / "reports" / "daily-latest.json", desk / "metrics" / "daily.prom"
    result = run(["daily", "--data", data, "--out", out, "--unsigned", "--metrics-file", prom])
    assert result.exit_code == 2, result.stderr
    assert "chain stopped: the check step failed" in result.stdout
    body = json.loads(out.read_text())["body"]
    assert body["failed_step"] == "check" and body["exit_code"] == 2
    assert [s["status"] for s in body["steps"]] == ["SKIP", "FAIL", "NOT RUN", "NOT RUN"]
    assert "binance_perp_ETHUSDT_1h_ohlcv.csv" in body["steps"][1]["reason"]
    assert body["steps"][2]["reason"] == "the check step failed"
    gauges = _gauges(prom)
    assert gauges["stagectl_command_exit_code"] == 2 and gauges["stagectl_checks_failed"] == 1


def test_an_unknown_champion_fails_the_compare_step_with_exit_2(run: Run, desk: Path) -> None:
    result = run(["daily", "--champion", "nope", "--challenger", "nada", "--json"])
    assert result.exit_code == 2
    doc = result.json()
    assert doc["failed_step"] == "compare" and doc["steps"][-1]["status"] == "FAIL"
    assert [s["status"] for s in doc["steps"][:3]] == ["SKIP", "PASS", "PASS"]


def test_an_unreachable_exchange_fails_the_ingest_with_exit_3(run: Run, desk: Path) -> None:
    """A loopback port nobody listens on: the fetch cannot connect."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run(
        ["daily", "--exchange", "binanceusdm", "--base-url", f"http://127.0.0.1:{port}", "--json"]
    )
    assert result.exit_code == 3, result.stderr
    doc = result.json()
    assert doc["failed_step"] == "ingest"
    assert [s["status"] for s in doc["steps"]] == ["FAIL", "NOT RUN", "NOT RUN", "NOT RUN"]
    assert doc["data"] == str(desk / "data" / "binanceusdm")


def test_exchange_and_data_together_are_refused(run: Run, desk: Path) -> None:
    result = run(["daily", "--exchange", "binanceusdm", "--data", desk])
    assert result.exit_code == 2
    assert "--exchange and --data" in result.stderr


@pytest.mark.slow  # ~10 s: two symbols' 8 months of bars through ccxt
def test_with_an_exchange_the_chain_ingests_the_sleeves_and_runs_on_the_cache(
    run: Run, desk: Path
) -> None:
    """Real ccxt against the loopback simulator: the sleeves' 1h candles and funding are
    fetched into HOME/data/binanceusdm/, checked, and walked forward from there."""
    from stagectl.data import load_candles, load_funding
    from tests.exchange_sim import running_sim

    clock = "2024-09-15T00:30:00Z"
    symbols = ("ETHUSDT", "SOLUSDT")  # the default strategy's sleeves
    candles = {s: load_candles(s).loc[:"2024-09-15"] for s in symbols}
    funding = {s: load_funding(s).loc[:"2024-09-15"] for s in symbols}
    with running_sim(candles=candles, funding=funding, start=clock) as sim:
        args = ["daily", "--exchange", "binanceusdm", "--base-url", sim.base_url]
        result = run([*args, "--now", clock, "--json"])
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["data"] == str(desk / "data" / "binanceusdm")
    assert [s["status"] for s in doc["steps"]] == ["PASS", "PASS", "PASS", "SKIP"]
    fetched = doc["steps"][0]["details"]["symbols"]
    assert [f["symbol"] for f in fetched] == list(symbols)
    for each in fetched:
        # 2024-01-01 .. 2024-09-14 23:00: every whole bar the simulator has
        assert each["series"]["ohlcv"]["rows"] == 258 * 24
        assert each["series"]["funding"]["rows"] > 0
    assert doc["steps"][2]["details"]["folds"] >= 1
