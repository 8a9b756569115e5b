"""Every number, duration, speed and date the CLI takes is finite and bounded: nan, inf,
1e308 and absurd durations or dates are exit 2 naming the option (docs/cli.md, "Option
bounds"), and a hostile config is exit 2 naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer._click.types import FloatParamType, IntParamType

from stagectl.cli.main import COMMANDS, _load
from tests.conftest import REPO_ROOT, CliResult, Run
from tests.hostile_yaml import alias_bomb

STRATEGY_TEXT = (REPO_ROOT / "config" / "futures_alt_ensemble.yaml").read_text(encoding="utf-8")


def _usage_error(result: CliResult, option: str) -> None:
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert option in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("option", ["--hours", "--seconds"])
@pytest.mark.parametrize("value", ["1e308", "nan", "inf", "-inf", "0", "1e6"])
def test_metrics_window_lengths_are_finite_and_at_most_ten_years(
    run: Run, option: str, value: str
) -> None:
    if option == "--seconds" and value == "1e6":
        value = "1e9"
    _usage_error(run(["metrics", "window", option, value, "--json"]), option)


def test_run_live_refuses_a_duration_longer_than_ten_years(run: Run) -> None:
    result = run(["run-live", "--duration", "99999999999d", "--json"])
    _usage_error(result, "--duration")
    assert "too long: at most 10 years" in result.stderr


@pytest.mark.parametrize("speed", ["nanx", "infx", "1e308x", "nan", "0.5x", "2000000x", "-1x"])
def test_run_live_speed_is_max_or_a_finite_multiple(run: Run, speed: str) -> None:
    result = run(["run-live", "--speed", speed, "--duration", "2h"])
    _usage_error(result, "--speed")
    assert "is not a speed" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["backtest", "--end", "9999-12-31"],
        ["backtest", "--start", "1999-01-01"],
        ["trading", "incidents", "--since", "1970-01-01"],
        ["metrics", "window", "--hours", "1", "--until", "2999-01-01"],
        ["risk-guard", "--now", "0001-01-01T00:00+01:00"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_date_outside_2009_to_tomorrow_is_refused(run: Run, args: list[str]) -> None:
    result = run(args)
    _usage_error(result, args[-2])
    assert "plausible range" in result.stderr or "is not a date" in result.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["backtest", "--cost-multiplier", "nan"], "--cost-multiplier"),
        (["walk-forward", "--cost-multiplier", "1e308"], "--cost-multiplier"),
        (["cpcv", "--pbo-partitions", "30"], "--pbo-partitions"),
        (["cpcv", "--folds", "30", "--test-folds", "15"], "--folds/--test-folds"),
        (["consensus", "--votes", "v.csv", "--k", "inf"], "--k"),
        (["stress-lab", "--equity", "nan"], "--equity"),
        (["shadow", "compare", "--baseline", "a", "--candidate", "b", "--seed", "-1"], "--seed"),
        (["trading", "confirm", "9" * 5000, "--by", "x"], "directive_id"),
        (["trading", "incidents", "--id", str(2**63)], "--id"),
        (["metrics", "window", "--hours", "1", "--mark", "BTCUSDT=1e400"], "--mark"),
    ],
    ids=lambda a: a if isinstance(a, str) else " ".join(a[:2]),
)
def test_absurd_numbers_are_usage_errors_naming_the_option(
    run: Run, args: list[str], option: str
) -> None:
    _usage_error(run(args), option)


def test_every_numeric_option_takes_a_bounded_type() -> None:
    """A new int or float option without bounds fails here (docs/cli.md, "Option bounds")."""
    from stagectl.cli._common import BoundedFloat, BoundedInt

    unbounded = []
    for name in COMMANDS:
        stack = [(name, _load(name))]
        while stack:
            path, command = stack.pop()
            stack.extend((f"{path} {n}", c) for n, c in getattr(command, "commands", {}).items())
            for param in command.params:
                kind = param.type
                numeric = isinstance(kind, FloatParamType | IntParamType)
                if numeric and not isinstance(kind, BoundedFloat | BoundedInt):
                    unbounded.append(f"{path} {param.opts[0]}")
    assert unbounded == []


def _config_run(run: Run, home: Path, text: str, *command: str) -> None:
    path = home / "strategy.yaml"
    path.write_text(text, encoding="utf-8")
    result = run([*command, "-c", str(path)])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(f"stagectl: {path}:")
    assert "Traceback" not in result.stderr
    assert len([ln for ln in result.stderr.splitlines() if ln.startswith("stagectl: ")]) == 1


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("lookback_bars: 168", "lookback_bars: " + "9" * 5000),
        ("lookback_bars: 168", "lookback_bars: 1000000000000000000000"),
        ("initial_equity_usd: 10000", "initial_equity_usd: .inf"),
        ("initial_equity_usd: 10000", "initial_equity_usd: .nan"),
    ],
    ids=["5000 digits", "10^21", "inf", "nan"],
)
def test_backtest_with_an_absurd_strategy_number_exits_2(
    run: Run, home: Path, old: str, new: str
) -> None:
    _config_run(run, home, STRATEGY_TEXT.replace(old, new, 1), "backtest")


@pytest.mark.parametrize("command", [["verify-thresholds"], ["run-live", "--duration", "2h"]])
def test_an_alias_bomb_config_exits_2(run: Run, home: Path, command: list[str]) -> None:
    _config_run(run, home, alias_bomb(10), *command)
