"""benchmarks/run_all.py: the summary line each benchmark prints, and the lines it reads
from the benchmarks that have none (no benchmark is run here)."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def run_all() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import run_all

        yield run_all
    finally:
        sys.path.remove(str(BENCHMARKS))
        for name in ("run_all", "summary"):
            sys.modules.pop(name, None)


def test_summary_line_round_trips_after_other_output(
    run_all: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    from summary import Row, emit, parse

    rows = [Row("verify", 160.0, "ms", 80.0, 2.0, "<= 2.0x", True), Row("walk", 0.3, "s")]
    print("a human-readable line")
    emit(rows)

    assert parse(capsys.readouterr().out) == rows


def test_output_without_a_summary_line_gives_none(run_all: ModuleType) -> None:
    from summary import parse

    assert parse("figure 1.0 s\nfloor 0.5 s\n") is None


LEDGER = """\
import of 200,000 fills (CSV): 1.18 s = 169,789 fills/s; total / baseline = 1.89x (CPU 1.74 s)
  baseline plain executemany of the same rows, no index, in memory: 0.62 s (320,955 rows/s)
metrics window --hours 1 over the 1 M-fill ledger, end to end: 0.24 s
  (stagectl --version alone: 0.09 s; ratio 2.6x)
regime-analyze over 525,600 one-minute bars, an empty ledger: 1.50 s
"""


def test_ledger_lines_become_rows_with_their_targets(run_all: ModuleType) -> None:
    imported, window, regimes = run_all.read_ledger(LEDGER)

    assert (imported.figure, imported.floor, imported.met) == (1.18, 0.62, False)
    assert (window.figure, window.floor, window.met) == (0.24, 0.09, True)
    assert (regimes.name, regimes.figure, regimes.met) == (
        "regime-analyze, 525,600 1m bars, an empty ledger",
        1.5,
        False,
    )


def test_a_changed_format_is_reported_as_not_parsed(run_all: ModuleType) -> None:
    rows = run_all.read_replay("replay took 1.2 seconds\n")

    assert [row.name for row in rows] == [
        "risk-guard replay: not parsed",
        "backtest + guard: not parsed",
    ]
    assert all(math.isnan(row.figure) for row in rows)


def test_replay_with_its_plain_backtest_floor_is_judged_on_the_ratio(
    run_all: ModuleType,
) -> None:
    output = (
        "replay hourly 20,800 bars x 2 sleeves: 1.200 (1.1-1.3) s  (3 guard actions)\n"
        "  floor, the plain backtest of the same sleeves: 1.000 (0.9-1.1) s\n"
    )

    replay, _ = run_all.read_replay(output)

    assert (replay.floor, replay.target, replay.met) == (1.0, "<= 1.5x", True)
    assert replay.ratio == pytest.approx(1.2)


def test_table_has_one_row_per_figure_and_says_which_targets_were_met(
    run_all: ModuleType,
) -> None:
    from summary import Row

    bench = run_all.BENCHMARKS[0]
    outcome = run_all.Outcome(
        bench, [Row("a", 2.0, "s", 1.0, None, "<= 1.5x", False), Row("b", 3.0, "s")], 1.0
    )

    lines = run_all.table([outcome], markdown=True, date="2026-12-03").splitlines()

    assert lines[0] == "| benchmark | figure | floor | ratio | target | met? | date |"
    assert lines[2] == f"| {bench.script}: a | 2 s | 1 s | 2.00x | <= 1.5x | NO | 2026-12-03 |"
    assert lines[3] == f"| {bench.script}: b | 3 s | - | - | - | - | 2026-12-03 |"
