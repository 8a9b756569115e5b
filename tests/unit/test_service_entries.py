"""Every command's service entry has the one shape (docs/architecture.md, "Service entries").

    def run(request: <Command>Request, *, home: Home, <hooks with defaults>) -> <Result>

The request is a frozen dataclass of the user's inputs, ``home`` is keyword-only, every
other parameter is a keyword-only hook with a default, and the result is a typed
dataclass, not a bare dict.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer

from stagectl.cli.main import COMMANDS
from stagectl.config.home import Home

# command (with its sub-command) -> (service module, entry)
ENTRIES: dict[str, tuple[str, str]] = {
    "init": ("stagectl.services.home.init", "run"),
    "state info": ("stagectl.services.home.state_info", "run"),
    "state copy": ("stagectl.services.home.state_copy", "run"),
    "data info": ("stagectl.services.data.info", "run"),
    "data check": ("stagectl.services.data.check", "run"),
    "data fetch": ("stagectl.services.data.fetch", "run"),
    "funding-scan": ("stagectl.services.data.funding_scan", "run"),
    "trading status": ("stagectl.services.trading.flags", "run_status"),
    "trading incidents": ("stagectl.services.trading.incidents", "run"),
    "trading enable": ("stagectl.services.trading.restart", "run"),
    "trading disable": ("stagectl.services.trading.flags", "run_set"),
    "trading reduce-only": ("stagectl.services.trading.flags", "run_set"),
    "trading confirm": ("stagectl.services.trading.directives", "run_confirm"),
    "trading cancel": ("stagectl.services.trading.directives", "run_cancel"),
    "trading revoke": ("stagectl.services.trading.directives", "run_revoke"),
    "preflight": ("stagectl.services.trading.preflight", "run"),
    "emergency-close": ("stagectl.services.trading.emergency_close", "run"),
    "verify-thresholds": ("stagectl.services.stage6.verify_thresholds", "run"),
    "market-intel": ("stagectl.services.stage6.market_intel", "run"),
    "governor": ("stagectl.services.stage6.governor", "run"),
    "stress-lab": ("stagectl.services.stage6.stress_lab", "run"),
    "risk-guard": ("stagectl.services.guard.live", "run"),
    "risk-guard --replay": ("stagectl.services.guard.replay", "run"),
    "risk-guard --weekly": ("stagectl.services.guard.weekly", "run"),
    "paper-gate": ("stagectl.services.guard.paper_gate", "run"),
    "backtest": ("stagectl.services.research.backtest", "run"),
    "backtest --grid": ("stagectl.services.research.grid", "run"),
    "walk-forward": ("stagectl.services.research.walk_forward", "run"),
    "cpcv": ("stagectl.services.research.cpcv", "run"),
    "audit-strategy": ("stagectl.services.research.audit", "run"),
    "consensus": ("stagectl.services.research.consensus", "run"),
    "optimize": ("stagectl.services.research.optimize", "run"),
    "route": ("stagectl.services.execution.route", "run"),
    "shadow compare": ("stagectl.services.research.shadow", "run_compare"),
    "shadow record-backtest": ("stagectl.services.research.shadow", "run_record_backtest"),
    "run-live": ("stagectl.services.live.run", "run"),
    "artifacts analyze": ("stagectl.services.live.analyze", "run"),
    "metrics import": ("stagectl.services.ledger.importer", "run"),
    "metrics fetch": ("stagectl.services.ledger.fetch", "run"),
    "metrics window": ("stagectl.services.ledger.window", "run"),
    "metrics export-windows": ("stagectl.services.ledger.export_windows", "run"),
    "regime-analyze": ("stagectl.services.ledger.regime_analyze", "run"),
    "telegram serve": ("stagectl.services.telegram.bot", "serve"),
    "telegram test": ("stagectl.services.telegram.check", "run"),
    "notify unit-failed": ("stagectl.services.guard.unit_failed", "run"),
    "notify test": ("stagectl.services.guard.unit_failed", "run_test"),
    "attribution": ("stagectl.services.ledger.attribution", "run"),
    "health": ("stagectl.services.trading.health", "run"),
    "daily": ("stagectl.services.research.daily", "run"),
    "schedule status": ("stagectl.services.home.schedule", "run"),
}

# Commands without a service: `report verify` checks a file with the reports package
# (a fast path on the standard library), `completion` prints or installs shell scripts.
NO_SERVICE = {"report", "completion"}

# Service modules a CLI module may import besides the entries: the one report path, the
# could-not-judge alert every scheduled command sends (cli/_scheduled.py), the --html
# pages built from an entry's result (docs/reports.md, "HTML pages"), and the
# --workers/--scheduler settings of the research commands.
SHARED_SERVICES = {
    "stagectl.services.publish",
    "stagectl.services.guard.alerts",
    "stagectl.services.pages.attribution",
    "stagectl.services.pages.guard",
    "stagectl.services.pages.research",
    "stagectl.services.research.parallel",
}

CLI_DIR = Path(__file__).resolve().parents[2] / "src" / "stagectl" / "cli"


def _entry(command: str) -> Callable[..., Any]:
    module_name, name = ENTRIES[command]
    entry: Callable[..., Any] = getattr(importlib.import_module(module_name), name)
    return entry


def _resolve(entry: Callable[..., Any], annotation: Any) -> Any:
    """An annotation as the object it names, in the entry's module."""
    if not isinstance(annotation, str):
        return annotation
    return eval(annotation, vars(inspect.getmodule(entry)))


def _subcommands(command: str) -> set[str]:
    app = importlib.import_module(COMMANDS[command][0]).app
    group = typer.main.get_command(app)
    names = getattr(group, "commands", None)
    return {f"{command} {name}" for name in names} if names else {command}


def _service_modules_imported_by_the_cli() -> set[str]:
    """Every ``stagectl.services...`` module a CLI module imports (lazily or not)."""
    found = set()
    for path in CLI_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.module is None:
                continue
            if not node.module.startswith("stagectl.services"):
                continue
            package = importlib.import_module(node.module)
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                is_module = hasattr(package, "__path__") and importlib.util.find_spec(submodule)
                found.add(submodule if is_module else node.module)
    return found


def test_every_command_has_an_entry_or_is_a_listed_exception() -> None:
    covered = {command.split()[0] for command in ENTRIES} | NO_SERVICE
    assert covered == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - NO_SERVICE))
def test_every_sub_command_has_an_entry(command: str) -> None:
    assert _subcommands(command) <= set(ENTRIES)


def test_the_cli_calls_no_service_module_but_the_entries() -> None:
    entries = {module for module, _ in ENTRIES.values()} | SHARED_SERVICES
    assert _service_modules_imported_by_the_cli() - entries == set()


@pytest.mark.parametrize("command", sorted(ENTRIES))
def test_the_entry_takes_a_request_first_and_everything_else_by_keyword(command: str) -> None:
    parameters = list(inspect.signature(_entry(command)).parameters.values())
    first, rest = parameters[0], parameters[1:]
    assert first.name == "request"
    assert first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest)
    assert rest and rest[0].name == "home"


@pytest.mark.parametrize("command", sorted(ENTRIES))
def test_the_request_is_a_frozen_dataclass(command: str) -> None:
    entry = _entry(command)
    request = _resolve(entry, inspect.signature(entry).parameters["request"].annotation)
    assert dataclasses.is_dataclass(request)
    assert request.__dataclass_params__.frozen  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", sorted(ENTRIES))
def test_home_is_the_stagectl_home_and_every_hook_has_a_default(command: str) -> None:
    entry = _entry(command)
    parameters = inspect.signature(entry).parameters
    assert _resolve(entry, parameters["home"].annotation) is Home
    assert parameters["home"].default is inspect.Parameter.empty
    hooks = [p for name, p in parameters.items() if name not in ("request", "home")]
    assert all(p.default is not inspect.Parameter.empty for p in hooks)


@pytest.mark.parametrize("command", sorted(ENTRIES))
def test_the_result_is_an_annotated_dataclass(command: str) -> None:
    entry = _entry(command)
    annotation = inspect.signature(entry).return_annotation
    assert annotation is not inspect.Signature.empty
    assert dataclasses.is_dataclass(_resolve(entry, annotation))
