"""Human output on an 80-column terminal: every table-printing command on the bundled
data keeps its key columns whole, colours severities only on a colour terminal, writes
times as ISO-8601 UTC with a Z and rounds numbers for people (cli/_format.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from stagectl.cli import _format
from stagectl.cli._format import fit_columns, fmt_number, fmt_time, human, severity_style
from tests.conftest import REPO_ROOT, CliResult, Run

EXAMPLES = REPO_ROOT / "docs" / "examples"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COLOUR = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-7]|9[0-7]|38;[25];[\d;]+)(?:;\d+)*m")
TIME_LIKE = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d[^\s,;)]*")
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?Z")
TERMINAL_80 = {"TTY_COMPATIBLE": "1", "COLUMNS": "80", "NO_COLOR": None, "FORCE_COLOR": None}

# Every command that prints a table, on the bundled data (kept short to stay fast).
TABLE_COMMANDS: dict[str, list[str]] = {
    "verify-thresholds": ["verify-thresholds"],
    "data info": ["data", "info"],
    "data check": ["data", "check"],
    "state info": ["state", "info"],
    "trading status": ["trading", "status"],
    "preflight": ["preflight"],
    "market-intel": ["market-intel"],
    "governor": ["governor"],
    "stress-lab": ["stress-lab"],
    "backtest": ["backtest", "--start", "2025-01-01", "--end", "2025-06-30"],
    "risk-guard --replay": [
        "risk-guard",
        "--replay",
        "--replay-start",
        "2024-06-01",
        "--replay-end",
        "2024-08-15",
        "--limit",
        "0",
    ],
    "walk-forward": ["walk-forward", "--train", "60d", "--test", "60d", "--fixed"],
    "cpcv": ["cpcv", "--folds", "4", "--test-folds", "1"],
    "audit-strategy": ["audit-strategy"],
    "funding-scan": ["funding-scan"],
    "optimize": ["optimize", str(EXAMPLES / "optimizer_candidates.yaml")],
    "consensus": [
        "consensus",
        "--votes",
        str(EXAMPLES / "consensus_votes.csv"),
        "--correlation",
        str(EXAMPLES / "consensus_correlation.csv"),
    ],
}


@dataclass(frozen=True)
class Printed:
    """One table a command printed: its columns, cells and how many are keys."""

    columns: list[str]
    cells: list[list[str]]
    keys: int


@pytest.fixture
def tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Printed]]:
    """Every table the terminal path lays out, recorded as it is printed."""
    printed: list[Printed] = []
    original = _format._rich_table

    def spy(title: str | None, columns: list[str], cells: list[list[str]], *, keys: int) -> None:
        printed.append(Printed(columns, cells, keys))
        original(title, columns, cells, keys=keys)

    monkeypatch.setattr(_format, "_rich_table", spy)
    yield printed


def _starts_with_keys(line: str, keys: list[str]) -> bool:
    """Whether ``line`` is a row that starts with these key cells, each whole."""
    rest = line
    for key in keys:
        if not rest.startswith(key):
            return False
        rest = rest[len(key) :].lstrip()
    return True


def _plain(text: str) -> str:
    return ANSI.sub("", text)


def _at_80(run: Run, args: Sequence[str], **env: str | None) -> CliResult:
    """``args`` on a fresh home as an 80-column terminal shows it."""
    assert run(["init"]).exit_code == 0
    result = run(list(args), env={**TERMINAL_80, **env})
    assert result.exit_code in (0, 1), result.stderr
    return result


# --- every table-printing command at 80 columns -------------------------------------------


@pytest.mark.parametrize("name", list(TABLE_COMMANDS))
def test_output_at_80_columns_keeps_keys_whole_times_iso_and_numbers_rounded(
    run: Run, home: Path, tables: list[Printed], name: str
) -> None:
    result = _at_80(run, TABLE_COMMANDS[name], NO_COLOR="1")
    out = _plain(result.stdout)
    lines = out.splitlines()
    assert tables, f"{name} printed no table"
    assert "…" not in out
    for table in tables:
        for row in table.cells:
            keys = row[: table.keys]
            line = next((line for line in lines if _starts_with_keys(line, keys)), None)
            assert line is not None, f"{keys!r} is cut in {name}"
            assert len(line) <= 80
            for cell in row[table.keys :]:
                for word in cell.split():
                    # Only a word wider than a line itself may be folded.
                    assert len(word) > 76 or word in out, f"{word!r} of {name} is not shown"
    said = out + _plain(result.stderr)
    for moment in TIME_LIKE.findall(said):
        assert ISO_Z.fullmatch(moment.rstrip(".:")), f"{moment!r} in {name}"
    assert "+00:00" not in said
    assert not re.search(r"\d\.\d{7,}", out), f"an unrounded number in {name}"
    assert not re.search(r"\b(True|False)\b", out)


def test_a_forced_terminal_colours_critical_and_medium_rows(run: Run, home: Path) -> None:
    result = _at_80(run, TABLE_COMMANDS["risk-guard --replay"], FORCE_COLOR="1")
    assert COLOUR.search(result.stdout)
    critical = next(line for line in result.stdout.splitlines() if "CRITICAL" in line)
    assert "\x1b[1;31m" in critical
    medium = next(line for line in result.stdout.splitlines() if "MEDIUM" in line)
    assert "\x1b[33m" in medium


def test_no_color_keeps_a_terminal_table_free_of_colour(run: Run, home: Path) -> None:
    result = _at_80(run, TABLE_COMMANDS["risk-guard --replay"], NO_COLOR="1")
    assert "CRITICAL" in result.stdout
    assert not COLOUR.search(result.stdout)


def test_piped_output_is_plain_text(run: Run, home: Path) -> None:
    assert run(["init"]).exit_code == 0
    result = run(TABLE_COMMANDS["risk-guard --replay"], env={"NO_COLOR": None})
    assert result.exit_code == 0
    assert "CRITICAL" in result.stdout
    assert "\x1b" not in result.stdout
    assert "\x1b" not in result.stderr


def test_a_table_too_wide_shows_the_other_columns_under_each_row(
    run: Run, home: Path, tables: list[Printed]
) -> None:
    result = _at_80(run, ["verify-thresholds"], NO_COLOR="1")
    lines = _plain(result.stdout).splitlines()
    row = lines.index(next(line for line in lines if "market_intel.mandatory_symbols" in line))
    assert lines[row].split() == ["PASS", "market_intel.mandatory_symbols"]
    assert lines[row + 1].startswith("    expected: BTCUSDT, ETHUSDT, SOLUSDT")


def test_run_live_summary_reads_yes_no_iso_times_and_rounded_money(run: Run, home: Path) -> None:
    result = run(["run-live", "--start", "2026-05-10", "--end", "2026-05-12"])
    assert result.exit_code == 0, result.stderr
    fields = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert fields["resumed"] == "no"
    assert ISO_Z.fullmatch(fields["first_bar"])
    assert ISO_Z.fullmatch(fields["last_bar"])
    assert re.fullmatch(r"[\d,]+\.\d\d", fields["equity"])


# --- the rules themselves -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (datetime(2026, 4, 1, tzinfo=UTC), "2026-04-01T00:00Z"),
        (datetime(2026, 4, 1, 2, 3, 4, 567, tzinfo=UTC), "2026-04-01T02:03:04Z"),
        (datetime(2026, 4, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))), "2026-04-01T00:00Z"),
        ("2026-04-01 00:00:00+00:00", "2026-04-01T00:00Z"),
        ("2026-04-01T10:30:15Z", "2026-04-01T10:30:15Z"),
        ("a 2026-04-01 note", "a 2026-04-01 note"),
        (True, "yes"),
        (False, "no"),
        (None, "-"),
        (9973.829787454675, "9,973.83"),
        (Decimal("10000.00000001"), "10,000.00"),
        (-0.566619123, "-0.5666"),
        (15.573012, "15.57"),
        (46.0, "46"),
        (float("nan"), "-"),
        (20816, "20816"),
        ({"ETHUSDT": 0.5, "SOLUSDT": 1}, "ETHUSDT=0.5, SOLUSDT=1"),
        ({}, "-"),
    ],
)
def test_human_formats_each_kind_of_value(value: Any, shown: str) -> None:
    assert human(value) == shown


def test_fmt_time_treats_a_naive_time_as_utc() -> None:
    assert fmt_time(datetime(2026, 4, 1, 12, 0)) == "2026-04-01T12:00Z"


def test_fmt_number_never_prints_negative_zero() -> None:
    assert fmt_number(-0.00000001) == "-1e-08"
    assert fmt_number(-0.0) == "0"


@pytest.mark.parametrize(
    ("cells", "style"),
    [
        (["2024-01-01T00:00Z", "mdd_limit", "FLATTEN_ALL CRITICAL"], "bold red"),
        (["FAIL", "market_intel.default_weight"], "bold red"),
        (["x", "MANUAL_REVIEW MEDIUM"], "yellow"),
        (["x", "DISABLE_SLEEVE HIGH", "WARNING"], "red"),
        (["PASS", "a message that says FAIL in passing"], None),
        (["PASS", "clean"], None),
    ],
)
def test_severity_style_picks_the_worst_named_severity(cells: list[str], style: str | None) -> None:
    assert severity_style(cells) == style


def test_fit_columns_keeps_every_column_when_the_longest_words_fit() -> None:
    cells = [["BTCUSDT", "a long reason that can wrap"]]
    assert fit_columns(["symbol", "reason"], cells, keys=1, width=20) == [0, 1]


def test_fit_columns_keeps_the_keys_and_what_fits_whole() -> None:
    cells = [["market_intel.mandatory_symbols", "1.15", "BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT"]]
    kept = fit_columns(["check", "value", "expected"], cells, keys=1, width=40)
    assert kept == [0, 1]


def test_preflight_rounds_the_reconciliation_figures(run: Run, home: Path) -> None:
    assert run(["run-live", "--start", "2026-05-10", "--end", "2026-05-12"]).exit_code == 0
    result = run(["preflight"])
    line = next(line for line in result.stdout.splitlines() if "reconciliation" in line)
    assert re.search(r"equity \d+\.\d{6} vs ledger \d+\.\d{6}", line), line


def test_a_terminal_shows_replay_progress_as_done_of_total_with_an_eta(
    run: Run, home: Path
) -> None:
    result = _at_80(run, TABLE_COMMANDS["risk-guard --replay"], NO_COLOR="1")
    progress = _plain(result.stderr)
    assert "replay" in progress
    assert re.search(r"\b1824/1824\b", progress)
    assert "ETA" in progress
    assert "replay: 100 %" not in progress


def test_grid_widths_keep_every_word_whole_and_give_the_rest_to_the_text() -> None:
    columns = ["symbol", "last settlement", "flag"]
    cells = [["XRPUSDT", "2026-05-18T08:00Z", "carry turned negative: shorts now pay funding"]]
    widths = _format.grid_widths(columns, cells, keys=1, width=50)
    assert widths is not None
    assert widths[:2] == [7, 17]
    assert widths[2] >= len("negative:") and sum(widths) + 4 <= 50
    assert _format.grid_widths(columns, cells, keys=1, width=200) is None


def test_a_number_and_its_percent_sign_count_as_one_word() -> None:
    assert _format._longest_word("-1.87 %") == len("-1.87 %")
    assert _format._longest_word("carry turned negative") == len("negative")
