"""The fast paths import none of the heavy libraries (docs/performance.md).

Each command runs in a fresh interpreter, the way a shell runs it, and reports
which heavy top-level packages ended up in ``sys.modules``. Timing is measured
by benchmarks/startup.py, not here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stagectl.cli.main import COMMANDS

HEAVY = (
    "pandas",
    "numpy",
    "ccxt",
    "sqlite_utils",
    "rich",
    "apprise",
    "requests",
    "dask",
    "distributed",
    "plotly",
)

PROBE = """
import json, sys
from stagectl.cli.main import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as report:
    json.dump({"exit_code": code, "modules": sorted(sys.modules)}, report)
"""


def heavy_imports(args: list[str], home: Path, env: dict[str, str] | None = None) -> list[str]:
    """The heavy packages a fresh ``stagectl ARGS`` process imported."""
    top_level = {name.split(".")[0] for name in imported_modules(args, home, env)}
    return sorted(top_level & set(HEAVY))


def imported_modules(args: list[str], home: Path, env: dict[str, str] | None = None) -> set[str]:
    """Every module a fresh ``stagectl ARGS`` process imported."""
    report = home.parent / "imports.json"
    environment = {
        **os.environ,
        "STAGECTL_HOME": str(home),
        "NO_COLOR": "1",
        "COLUMNS": "120",
        **(env or {}),
    }
    subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args],
        cwd=home,
        env=environment,
        capture_output=True,
        check=True,
    )
    modules: list[str] = json.loads(report.read_text())["modules"]
    return set(modules)


def _require(command: str) -> None:
    if command not in COMMANDS or importlib.util.find_spec(COMMANDS[command][0]) is None:
        pytest.skip(f"'stagectl {command}' is not registered or not written yet")


def test_root_help_imports_no_heavy_library(home: Path) -> None:
    assert heavy_imports(["--help"], home) == []


def test_version_imports_no_heavy_library(home: Path) -> None:
    assert heavy_imports(["--version"], home) == []


def test_completion_show_imports_no_heavy_library(home: Path) -> None:
    assert heavy_imports(["completion", "show", "bash"], home) == []


@pytest.mark.parametrize("command", ["backtest", "walk-forward", "cpcv", "audit-strategy"])
def test_research_command_help_imports_no_dask(home: Path, command: str) -> None:
    """--workers/--scheduler are plain options: dask loads only when a cluster is used."""
    modules = {name.split(".")[0] for name in imported_modules([command, "--help"], home)}
    assert modules & {"dask", "distributed"} == set()


def test_risk_guard_help_imports_no_heavy_library(home: Path) -> None:
    """Its notifications may go through apprise: imported when an alert is sent only."""
    _require("risk-guard")
    assert heavy_imports(["risk-guard", "--help"], home) == []


def test_verify_thresholds_json_imports_no_heavy_library(home: Path) -> None:
    _require("verify-thresholds")
    assert heavy_imports(["verify-thresholds", "--json"], home) == []


def test_verify_thresholds_json_imports_neither_the_state_nor_trading_types(home: Path) -> None:
    """Recording a written report (sqlite3, the state) and the trading types are off the
    --json path (docs/performance.md)."""
    _require("verify-thresholds")
    unneeded = {"sqlite3", "stagectl.state.db", "stagectl.domain.types"}

    assert imported_modules(["verify-thresholds", "--json"], home) & unneeded == set()


def test_report_verify_imports_nothing_it_would_need_to_write(home: Path) -> None:
    """Writing a file (tempfile), importlib.resources and the trading types are off the
    path of a command that only reads."""
    _require("report")
    unneeded = {"tempfile", "importlib.resources", "stagectl.domain.types"}
    missing = str(home / "no-such-report.json")

    assert imported_modules(["report", "verify", missing], home) & unneeded == set()


def test_report_verify_imports_no_heavy_library(home: Path) -> None:
    _require("report")
    report = home / "report.json"
    report.write_text(
        json.dumps(
            {
                "schema": "stagectl.report/v2",
                "kind": "thresholds",
                "generated_at": "2024-06-07T00:00:00Z",
                "stagectl_version": "0.1.0",
                "inputs": [],
                "body": {"ok": True},
                "signature": {"alg": "HMAC-SHA256", "key_id": "test", "value": "00" * 32},
            }
        )
    )
    env = {"STAGECTL_HMAC_KEY": "test-signing-key-0123456789abcdef"}
    assert heavy_imports(["report", "verify", str(report)], home, env) == []


def test_state_info_json_imports_no_heavy_library(home: Path) -> None:
    _require("state")
    if "init" in COMMANDS and importlib.util.find_spec(COMMANDS["init"][0]) is not None:
        heavy_imports(["init"], home)
    assert heavy_imports(["state", "info", "--json"], home) == []


def test_trading_status_json_imports_no_heavy_library(home: Path) -> None:
    _require("trading")
    heavy_imports(["trading", "disable", "--reason", "probe"], home)
    assert heavy_imports(["trading", "status", "--json"], home) == []


def test_a_report_without_html_never_loads_plotly(home: Path) -> None:
    """plotly is imported to write an --html page, not to compute a report."""
    _require("backtest")
    modules = imported_modules(["backtest", "--start", "2026-01-01", "--json"], home)
    assert not {m for m in modules if m.split(".")[0] == "plotly"}


def test_schedule_status_imports_no_heavy_library(home: Path) -> None:
    """The page-on-it check of the schedule: its textfiles and cron times only."""
    heavy_imports(["init", str(home)], home)
    heavy_imports(
        ["funding-scan", "--metrics-file", str(home / "metrics" / "funding-scan.prom")], home
    )
    assert heavy_imports(["schedule", "status", "--json"], home) == []
