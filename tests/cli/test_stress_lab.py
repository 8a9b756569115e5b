"""stagectl stress-lab: every exit path, the signed verdict, blocking, HTML and --compare."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stagectl.config.home import defaults_dir
from stagectl.data import SAMPLE_DIR
from tests.conftest import Run

CALM = "2026-05-01T12:00Z"  # bundled data: no baseline metric breaches at this time


def _write_positions(home: Path) -> Path:
    path = home / "book.csv"
    path.write_text("symbol,qty,entry_price\nBTCUSDT,0.5,80000\nSOLUSDT,-100,150\n")
    return path


def test_full_run_writes_a_signed_report_that_report_verify_accepts(
    run: Run, home: Path, signed_off: Path
) -> None:
    result = run(["stress-lab", "--out", "r.json"])
    assert result.exit_code == 1  # the bundled data's stress scenarios breach
    assert "BREACH" in result.stdout
    report = json.loads((home / "r.json").read_text())
    assert report["kind"] == "stress-lab"
    verified = run(["report", "verify", "r.json"])
    assert verified.exit_code == 0, verified.stderr
    verdict = report["body"]["verdict"]
    assert verdict["verification"]["passed"] is True
    assert verdict["verification"]["failed"] == 0
    assert verdict["verification"]["checks"] > 0
    assert len(verdict["config"]["sha256"]) == 64
    names = [s["name"] for s in verdict["scenarios"]]
    assert {"blackout", "combined", "hist_solusdt_24h_down", "hist_btcusdt_7d_down"} <= set(names)
    crash = next(s for s in report["body"]["scenarios"] if s["name"] == "hist_btcusdt_24h_down")
    assert crash["window"]["start"] == "2024-08-04T13:00:00Z"
    assert crash["window"]["end"] == "2024-08-05T13:00:00Z"
    assert "2024-08-05T13:00:00Z" in crash["description"]


def test_tampered_verdict_fails_report_verify(run: Run, home: Path, signed_off: Path) -> None:
    assert (
        run(["stress-lab", "--scenario", "blackout", "--now", CALM, "--out", "r.json"]).exit_code
        == 0
    )
    report = json.loads((home / "r.json").read_text())
    report["body"]["verdict"]["status"] = "breach"
    (home / "r.json").write_text(json.dumps(report))
    assert run(["report", "verify", "r.json"]).exit_code == 1


def test_blackout_scenario_is_checked_with_its_overrides_and_passes(run: Run) -> None:
    result = run(["stress-lab", "--scenario", "blackout", "--now", CALM, "--json"])
    assert result.exit_code == 0, result.stderr
    envelope = result.json()
    assert envelope["body"]["verdict"]["status"] == "pass"
    checks = {c["metric"]: c for c in envelope["body"]["scenarios"][0]["checks"]}
    assert checks["latency_ms"]["value"] == 170.0
    assert checks["latency_ms"]["limit"] == 180.0
    assert checks["blackout_min"]["limit"] == 55.0
    assert not checks["latency_ms"]["breached"]
    assert envelope["body"]["verdict"]["scenario_overrides"] == {
        "blackout": {"latency_ms": 180.0, "blackout_min": 55.0}
    }


def test_a_shock_crossing_a_threshold_is_a_breach_with_metric_value_and_limit(run: Run) -> None:
    result = run(["stress-lab", "--scenario", "latency_degradation", "--now", CALM, "--json"])
    assert result.exit_code == 1
    verdict = result.json()["body"]["verdict"]
    assert verdict["status"] == "breach"
    [breach] = verdict["scenarios"][0]["breaches"]
    assert breach["metric"] == "latency_ms"
    assert breach["value"] == 250.0
    assert breach["limit"] == 150.0
    assert breach["symbols"] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]


def test_core_yaml_off_baseline_blocks_publication_and_writes_no_file(
    run: Run, home: Path, hmac_key: str
) -> None:
    config = home / "config"
    config.mkdir()
    text = (defaults_dir() / "core.yaml").read_text()
    (config / "core.yaml").write_text(text.replace("spread_bps: 45", "spread_bps: 60"))
    result = run(["stress-lab", "--out", "r.json", "--html", "r.html"])
    assert result.exit_code == 1
    assert "BLOCKED" in result.stdout
    assert "stress_lab.thresholds.spread_bps" in result.stdout
    assert not (home / "r.json").exists()
    assert not (home / "r.html").exists()
    as_json = run(["stress-lab", "--json", "--out", "r.json"])
    assert as_json.exit_code == 1
    document = as_json.json()
    assert document["status"] == "blocked"
    assert document["published"] is False
    assert [c["id"] for c in document["failed_checks"]] == ["stress_lab.thresholds.spread_bps"]
    assert not (home / "r.json").exists()


def test_unknown_scenario_is_a_usage_error(run: Run) -> None:
    result = run(["stress-lab", "--scenario", "meteor_strike"])
    assert result.exit_code == 2
    assert "meteor_strike" in result.stderr
    assert "blackout" in result.stderr


def test_bad_positions_file_is_an_input_error_naming_the_line(run: Run, home: Path) -> None:
    (home / "book.csv").write_text("symbol,qty,entry_price\nBTCUSDT,abc,80000\n")
    result = run(["stress-lab", "--positions", "book.csv"])
    assert result.exit_code == 2
    assert "book.csv:2" in result.stderr
    assert "qty" in result.stderr


def test_position_without_market_data_is_an_input_error(run: Run, home: Path) -> None:
    (home / "book.yaml").write_text("- {symbol: DOGEUSDT, qty: 10, entry_price: 0.1}\n")
    result = run(["stress-lab", "--positions", "book.yaml"])
    assert result.exit_code == 2
    assert "DOGEUSDT" in result.stderr


def test_missing_mandatory_symbol_in_data_dir_is_an_input_error_naming_it(
    run: Run, home: Path
) -> None:
    data = home / "data"
    data.mkdir()
    for symbol in ("BTCUSDT", "ETHUSDT"):
        name = f"binance_perp_{symbol}_1h_ohlcv.csv.gz"
        shutil.copy(SAMPLE_DIR / name, data / name)
    result = run(["stress-lab", "--data", str(data)])
    assert result.exit_code == 2
    assert "SOLUSDT" in result.stderr


def test_positions_give_portfolio_impact_and_a_self_contained_html_page(
    run: Run, home: Path, signed_off: Path
) -> None:
    book = _write_positions(home)
    result = run(
        ["stress-lab", "--scenario", "combined", "--positions", book, "--json", "--html", "r.html"]
    )
    assert result.exit_code == 1
    body = result.json()["body"]
    portfolio = body["portfolio"]
    marks = {p["symbol"]: p["mark_price"] for p in portfolio["positions"]}
    impact = body["scenarios"][0]["portfolio"]
    expected_mtm = 0.5 * marks["BTCUSDT"] * -0.15 + -100 * marks["SOLUSDT"] * -0.15
    assert impact["mtm_pnl_usd"] == pytest.approx(expected_mtm)
    assert impact["liquidation_cost_usd"] > 0
    assert portfolio["source"].endswith("book.csv")
    page = (home / "r.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page
    assert "combined" in page
    for external in ("http://", "https://", "<script", "<link", "@import", "url("):
        assert external not in page


def test_compare_lists_breaches_added_and_metric_deltas(
    run: Run, home: Path, signed_off: Path
) -> None:
    first = run(["stress-lab", "--scenario", "blackout", "--now", CALM, "--out", "calm.json"])
    assert first.exit_code == 0
    second = run(["stress-lab", "--scenario", "blackout", "--compare", "calm.json", "--json"])
    assert second.exit_code == 1
    comparison = second.json()["body"]["comparison"]
    assert {"scenario": "blackout", "metric": "sentiment"} in comparison["breaches_added"]
    assert comparison["breaches_removed"] == []
    sentiment = comparison["metric_deltas"]["blackout"]["sentiment"]
    assert sentiment["delta"] == pytest.approx(sentiment["current"] - sentiment["previous"])
    assert sentiment["delta"] < 0


def test_compare_with_an_unreadable_report_is_an_input_error(run: Run, home: Path) -> None:
    (home / "old.json").write_text("{not json")
    result = run(["stress-lab", "--scenario", "blackout", "--compare", "old.json"])
    assert result.exit_code == 2
    assert "old.json" in result.stderr


@pytest.mark.parametrize("unsigned", [[], ["--unsigned"]])
def test_out_without_a_key_is_refused_and_writes_nothing(
    run: Run, home: Path, unsigned: list[str]
) -> None:
    # no key: no compliance sign-off can be verified, and --unsigned cannot waive it
    args = ["stress-lab", "--scenario", "blackout", "--now", CALM, "--out", "r.json"]
    result = run([*args, *unsigned])
    assert result.exit_code == 1
    assert "stress-lab --out refused" in result.stderr
    assert "STAGECTL_HMAC_KEY" in result.stderr
    assert not (home / "r.json").exists()


def test_a_baseline_breach_is_labelled_baseline_and_not_attributed_to_scenarios(
    run: Run, home: Path, signed_off: Path
) -> None:
    # bundled data at the default now: live sentiment 0.24 < 0.50 before any shock
    result = run(["stress-lab", "--scenario", "blackout", "--json", "--html", "r.html"])
    assert result.exit_code == 1  # a baseline breach alone exits 1
    verdict = result.json()["body"]["verdict"]
    [at_baseline] = verdict["market_baseline"]["breaches"]
    assert at_baseline["metric"] == "sentiment"
    assert at_baseline["cause"] == "baseline"
    assert at_baseline["value"] < at_baseline["limit"] == 0.5
    [shared] = verdict["scenarios"][0]["breaches"]
    assert (shared["metric"], shared["cause"]) == ("sentiment", "baseline")
    assert shared["value"] == pytest.approx(at_baseline["value"])
    assert verdict["status"] == "breach"
    assert verdict["baseline_breach_count"] == 1
    assert verdict["breach_count"] == 1
    assert verdict["scenario_caused_breach_count"] == 0
    assert verdict["scenarios_breached_beyond_baseline"] == 0
    page = (home / "r.html").read_text()
    assert page.index('<tr class="baseline"><td class="name">baseline') < page.index(">blackout<")
    assert 'class="atbase"' in page

    human = run(["stress-lab", "--scenario", "blackout"])
    assert human.exit_code == 1
    lines = human.stdout.splitlines()
    table = [line.split() for line in lines if line.startswith(("baseline ", "blackout "))]
    assert table == [
        ["baseline", "baseline", "1", "sentiment", "-", "-", "-", "-"],
        ["blackout", "hypothetical", "0", "-", "1", "-", "-", "-"],
    ]
    breaches = [line for line in lines if line.startswith("BREACH ")]
    assert breaches[0].startswith("BREACH baseline: sentiment")
    assert breaches[1].startswith("BREACH blackout: sentiment")
    assert breaches[1].endswith("(already at baseline)")


def test_a_shock_crossing_or_worsening_a_threshold_is_labelled_scenario(run: Run) -> None:
    scenarios = ["--scenario", "latency_degradation", "--scenario", "sentiment_crash"]
    result = run(["stress-lab", *scenarios, "--json"])
    assert result.exit_code == 1
    verdict = result.json()["body"]["verdict"]
    causes = {
        s["name"]: {b["metric"]: b["cause"] for b in s["breaches"]} for s in verdict["scenarios"]
    }
    # latency crosses 150 ms only under the shock; sentiment is only carried over
    assert causes["latency_degradation"] == {"latency_ms": "scenario", "sentiment": "baseline"}
    # sentiment already breaches, but the crash pushes it further below the limit
    assert causes["sentiment_crash"] == {"sentiment": "scenario"}
    assert verdict["scenario_caused_breach_count"] == 2
    assert verdict["scenarios_breached_beyond_baseline"] == 2
    human = run(["stress-lab", "--scenario", "latency_degradation"]).stdout.splitlines()
    assert "BREACH latency_degradation: latency_ms 250 > 150" in "\n".join(human)
    [row] = [line.split() for line in human if line.startswith("latency_degradation ")]
    assert row[2:5] == ["1", "latency_ms", "1"]


def test_calm_market_has_a_clean_baseline_row_and_exits_zero(run: Run) -> None:
    result = run(["stress-lab", "--scenario", "blackout", "--now", CALM, "--json"])
    assert result.exit_code == 0
    body = result.json()["body"]
    assert body["verdict"]["market_baseline"] == {
        "name": "baseline",
        "kind": "baseline",
        "breached": False,
        "breaches": [],
    }
    assert [c["cause"] for c in body["market_baseline"]["checks"]] == [None] * 8
    assert body["market_baseline"]["portfolio"] is None  # no positions


def test_baseline_row_and_breach_causes_are_signed(run: Run, home: Path, signed_off: Path) -> None:
    assert run(["stress-lab", "--scenario", "blackout", "--out", "r.json"]).exit_code == 1
    assert run(["report", "verify", "r.json"]).exit_code == 0
    report = json.loads((home / "r.json").read_text())
    report["body"]["verdict"]["scenarios"][0]["breaches"][0]["cause"] = "scenario"
    (home / "r.json").write_text(json.dumps(report))
    assert run(["report", "verify", "r.json"]).exit_code == 1
    report["body"]["verdict"]["scenarios"][0]["breaches"][0]["cause"] = "baseline"
    report["body"]["verdict"]["market_baseline"]["breaches"] = []
    (home / "r.json").write_text(json.dumps(report))
    assert run(["report", "verify", "r.json"]).exit_code == 1


def test_a_positions_file_that_never_ends_is_refused_unread(run: Run, home: Path) -> None:
    endless = home / "book.json"
    endless.symlink_to("/dev/zero")
    result = run(["stress-lab", "--positions", endless])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"stagectl: {endless}: positions file larger than 1 MiB"
