"""stagectl preflight: the checklist's exit paths, --json, exchange checks, no secrets."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stagectl.config.home import defaults_dir
from stagectl.data import load_candles
from stagectl.exchange.credentials import KEY_ENV, SECRET_ENV
from tests.conftest import Run
from tests.exchange_sim import API_KEY, API_SECRET, ExchangeSim, running_sim

CHECKS = 13


def ready(home: Path) -> None:
    for directory in ("artifacts/stage3", "logs", "reports"):
        (home / directory).mkdir(parents=True, exist_ok=True)


def statuses(document: dict[str, object]) -> dict[str, str]:
    return {c["check"]: c["status"] for c in document["checks"]}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def sim() -> Iterator[ExchangeSim]:
    candles = {s: load_candles(s) for s in ("ETHUSDT", "SOLUSDT")}
    with running_sim(candles=candles) as simulator:
        yield simulator


def two_symbol_config(home: Path) -> Path:
    """stage3.yaml with the simulator's two symbols only: a policy, not a run profile (the
    profile's four-symbol strategy would not be capped by it)."""
    document = yaml.safe_load((defaults_dir() / "stage3.yaml").read_text())
    del document["run"]
    document["symbols"] = {s: document["symbols"][s] for s in ("ETHUSDT", "SOLUSDT")}
    sizes = document["stop_limit_tests"]["sizes"]
    document["stop_limit_tests"]["sizes"] = {s: sizes[s] for s in ("ETHUSDT", "SOLUSDT")}
    path = home / "stage3-sim.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_fresh_home_fails_on_missing_artifact_directories(run: Run) -> None:
    result = run(["preflight", "--json"])
    assert result.exit_code == 1
    document = result.json()
    assert document["passed"] is False and len(document["checks"]) == CHECKS
    assert statuses(document)["artifact directories"] == "FAIL"
    assert statuses(document)["TIF policy"] == "PASS"
    assert statuses(document)["SIZED_DOWN generation"] == "PASS"
    assert statuses(document)["margin window detection"] == "PASS"


def test_a_prepared_paper_home_passes_with_skips(run: Run, home: Path) -> None:
    ready(home)
    result = run(["preflight", "--json"])
    assert result.exit_code == 0, result.stdout
    document = result.json()
    assert document["summary"]["FAIL"] == 0
    assert statuses(document)["credentials present"] == "SKIP"
    assert statuses(document)["exchange reachable, clock skew"] == "SKIP"
    reason = {c["check"]: c["reason"] for c in document["checks"]}
    assert "snapshot" in reason["position limits vs exchange filters"]
    text = run(["preflight"])
    assert text.exit_code == 0 and "preflight PASSED" in text.stdout


def test_the_live_state_database_must_exist_and_be_current(run: Run, home: Path) -> None:
    ready(home)
    args = ["preflight", "--exchange", "binanceusdm", "--offline", "--json"]
    missing = run(args)
    assert missing.exit_code == 1
    assert statuses(missing.json())["state DB writable, schema current"] == "FAIL"
    assert run(["init"]).exit_code == 0
    ready(home)
    result = run(args)
    assert result.exit_code == 0, result.stdout
    assert statuses(result.json())["state DB writable, schema current"] == "PASS"
    assert statuses(result.json())["credentials present"] == "SKIP"


def test_a_position_limit_below_the_exchange_minimum_fails(run: Run, home: Path) -> None:
    ready(home)
    document = yaml.safe_load((defaults_dir() / "stage3.yaml").read_text())
    document["symbols"]["SOLUSDT"]["max_size"] = 0.5  # SOLUSDT trades in whole coins
    document["stop_limit_tests"]["sizes"]["SOLUSDT"] = 0.5
    config = home / "stage3-bad-limits.yaml"
    config.write_text(yaml.safe_dump(document))
    result = run(["preflight", "-c", config, "--json"])
    assert result.exit_code == 1
    check = next(c for c in result.json()["checks"] if c["check"].startswith("position limits"))
    assert check["status"] == "FAIL" and "SOLUSDT max_size 0.5 < min qty 1" in check["reason"]


@pytest.mark.parametrize("content", [None, "symbols: [unclosed", "duration_h: -1\n"])
def test_a_bad_config_file_is_exit_2(run: Run, home: Path, content: str | None) -> None:
    path = home / "stage3.yaml"
    if content is not None:
        path.write_text(content)
    result = run(["preflight", "-c", path])
    assert result.exit_code == 2 and result.stdout == ""


def test_base_url_without_exchange_is_exit_2(run: Run) -> None:
    assert run(["preflight", "--base-url", "http://127.0.0.1:9"]).exit_code == 2


def test_exchange_checks_pass_against_the_simulator_and_never_print_secrets(
    run: Run, home: Path, sim: ExchangeSim
) -> None:
    run(["init"])
    ready(home)
    env = {KEY_ENV: API_KEY, SECRET_ENV: API_SECRET}
    args = ["preflight", "-c", two_symbol_config(home), "--exchange", "binanceusdm"]
    run([*args, "--base-url", sim.base_url], env=env)  # warm up: ccxt's import takes > 1 s
    with sim.engine.lock:  # the simulated clock stands still: set it to now, just before
        sim.engine.now_ms = int(time.time() * 1000)
    result = run([*args, "--base-url", sim.base_url, "--json"], env=env)
    assert result.exit_code == 0, result.stdout
    checks = statuses(result.json())
    assert checks["exchange reachable, clock skew"] == "PASS"
    assert checks["credentials present"] == "PASS"
    assert checks["key permissions"] == "PASS"
    reason = {c["check"]: c["reason"] for c in result.json()["checks"]}
    assert "withdrawals off, IP allowlist on" in reason["key permissions"]
    assert "exchange markets" in reason["position limits vs exchange filters"]
    text = run([*args, "--base-url", sim.base_url], env=env)
    for output in (result.stdout + result.stderr, text.stdout + text.stderr):
        assert API_SECRET not in output and API_KEY not in output


@pytest.mark.parametrize(
    ("restrictions", "reason"),
    [
        ({"enableWithdrawals": True}, "withdrawals are enabled"),
        ({"ipRestrict": False}, "no IP allowlist"),
        ({"enableFutures": False}, "cannot trade"),
    ],
)
def test_a_live_key_that_can_withdraw_or_has_no_ip_allowlist_fails(
    run: Run, home: Path, sim: ExchangeSim, restrictions: dict[str, bool], reason: str
) -> None:
    ready(home)
    sim.set_key_restrictions(API_KEY, **restrictions)
    try:
        with sim.engine.lock:
            sim.engine.now_ms = int(time.time() * 1000)
        args = ["preflight", "-c", two_symbol_config(home), "--exchange", "binanceusdm"]
        result = run(
            [*args, "--base-url", sim.base_url, "--json"],
            env={KEY_ENV: API_KEY, SECRET_ENV: API_SECRET},
        )
    finally:
        sim.set_key_restrictions(
            API_KEY, enableWithdrawals=False, ipRestrict=True, enableFutures=True
        )
    assert result.exit_code == 1
    check = next(c for c in result.json()["checks"] if c["check"] == "key permissions")
    assert check["status"] == "FAIL" and reason in check["reason"]


def test_key_permissions_skip_offline(run: Run, home: Path) -> None:
    ready(home)
    result = run(["preflight", "--exchange", "binanceusdm", "--offline", "--json"])
    check = next(c for c in result.json()["checks"] if c["check"] == "key permissions")
    assert check == {"check": "key permissions", "status": "SKIP", "reason": "--offline"}


def test_clock_skew_above_one_second_fails(run: Run, home: Path, sim: ExchangeSim) -> None:
    ready(home)
    with sim.engine.lock:
        sim.engine.now_ms = int(time.time() * 1000) - 5_000
    result = run(
        [
            "preflight",
            "-c",
            two_symbol_config(home),
            "--exchange",
            "binanceusdm",
            "--base-url",
            sim.base_url,
            "--json",
        ],
        env={KEY_ENV: API_KEY, SECRET_ENV: API_SECRET},
    )
    assert result.exit_code == 1
    check = next(c for c in result.json()["checks"] if c["check"].startswith("exchange"))
    assert check["status"] == "FAIL" and "clock skew" in check["reason"]


def test_missing_credentials_fail_for_an_exchange(run: Run, home: Path) -> None:
    ready(home)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run(
        [
            "preflight",
            "--exchange",
            "binanceusdm",
            "--base-url",
            f"http://127.0.0.1:{port}",
            "--json",
        ],
        env={KEY_ENV: None, SECRET_ENV: None, "STAGECTL_EXCHANGE_KEY_FILE": None},
    )
    assert result.exit_code == 1
    checks = statuses(result.json())
    assert checks["credentials present"] == "FAIL"
    assert checks["exchange reachable, clock skew"] == "FAIL"
    assert checks["position limits vs exchange filters"] == "SKIP"
