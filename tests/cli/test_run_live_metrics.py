"""`run-live --metrics-port`: live gauges scraped on 127.0.0.1 during a paced paper run,
parsed with prometheus-client's parser (docs/metrics.md)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Run
from tests.loopback_http import free_port

WAIT_S = 120.0
"""How long the run may take to come up and trade a few bars on a loaded machine (a
bound on the wait, not an assertion on speed)."""


Scraped = dict[str, list[tuple[dict[str, str], float]]]


def scrape(port: int) -> Scraped:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    found: Scraped = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def scrape_when(port: int, bars: int, process: subprocess.Popen[bytes]) -> Scraped:
    """The first scrape after the loop settled ``bars`` bars."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        try:
            found = scrape(port)
        except OSError:
            found = {}
        if found.get("stagectl_live_bars_total", [({}, 0)])[0][1] >= bars:
            return found
        time.sleep(0.2)
    raise AssertionError(f"run-live served no metrics of {bars} bars within {WAIT_S} s")


@pytest.fixture
def halted_paper(run: Run, home: Path) -> Path:
    """A fresh home whose paper mode is HALTED: every entry the loop decides is denied."""
    assert run(["init", home]).exit_code == 0
    assert run(["trading", "disable", "--paper", "--reason", "metrics test"]).exit_code == 0
    return home


@pytest.mark.slow
def test_a_paper_run_serves_its_gauges_on_localhost(halted_paper: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = ["run-live", "--start", "2026-04-01", "--end", "2026-04-03", "--speed", "7200x"]
    process = subprocess.Popen(
        [sys.executable, "-m", "stagectl", *args, "--metrics-port", str(port)],
        cwd=halted_paper,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        found = scrape_when(port, 3, process)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=WAIT_S)
    assert process.returncode == 130, stderr.decode()[-2000:]

    def one(name: str) -> float:
        assert len(found[name]) == 1, found.get(name)
        return found[name][0][1]

    assert one("stagectl_live_equity_usd") == pytest.approx(10_000)  # halted: never traded
    assert one("stagectl_live_drawdown_ratio") == 0
    assert one("stagectl_live_open_positions") == 0
    assert one("stagectl_live_orders_sent_total") == 0
    denied = {labels["reason"]: v for labels, v in found["stagectl_live_orders_denied_total"]}
    assert set(denied) == {"TRADING_HALTED"} and denied["TRADING_HALTED"] >= 1
    assert {labels["symbol"] for labels, _ in found["stagectl_live_position_qty"]} == {
        "ETHUSDT",
        "SOLUSDT",
    }
    assert one("stagectl_live_margin_utilization_ratio") == 0
    assert one("stagectl_live_reconciliation_drift_usd") == pytest.approx(0, abs=1e-6)
    assert one("stagectl_live_last_bar_timestamp_seconds") >= 1775001600  # 2026-04-01
    assert one("stagectl_live_last_bar_age_seconds") >= 0
    assert one("stagectl_live_loop_latency_seconds_count") >= 3
    assert found["stagectl_live_info"][0][0]["mode"] == "paper"


def test_a_port_in_use_is_refused_before_the_run_starts(run: Run, home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(["run-live", "--metrics-port", port, "--duration", "2h"])
    assert result.exit_code == 2
    assert "--metrics-port" in result.stderr and "Traceback" not in result.stderr
    assert not (home / "state" / "stagectl.db").exists()
