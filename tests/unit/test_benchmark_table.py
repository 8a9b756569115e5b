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
        for name in ("run_all", "summary", "backtest_e2e", "backtest_core", "market_data", "peers"):
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
import of 200,000 fills (CSV, own process): 1.18 s = 169,789 fills/s (CPU 1.74 s); floor \
csv + executemany 0.62 s = 320,955 rows/s (before 0.61 s, after 0.63 s); ratio 0.53x
  import peak memory 107 MB; a process importing the same modules 71 MB; ratio 1.51x
metrics window --hours 1 over 200,000 fills: service 66 ms, end to end 0.24 s; floor \
(the same over 100,000 fills) 60 ms, 0.23 s; ratio 1.10x service, 1.04x end to end
regime-analyze over 525,600 one-minute bars, an empty ledger: 1.50 s
"""


def test_ledger_lines_become_rows_with_their_targets(run_all: ModuleType) -> None:
    imported, memory, window, regimes = run_all.read_ledger(LEDGER)

    assert (imported.figure, imported.floor, imported.met) == (1.18, 0.62, False)
    assert (memory.figure, memory.floor, memory.met) == (107, 71, True)
    assert (window.figure, window.floor, window.met) == (66, 60, True)
    assert (regimes.name, regimes.figure, regimes.met) == (
        "regime-analyze, 525,600 1m bars, an empty ledger",
        1.5,
        False,
    )


def test_a_changed_format_is_reported_as_not_parsed(run_all: ModuleType) -> None:
    rows = run_all.read_replay("replay took 1.2 seconds\n")

    assert [row.name for row in rows] == [
        "risk-guard replay: not parsed",
        "backtest + guard (warm): not parsed",
        "backtest + guard (cold): not parsed",
    ]
    assert all(math.isnan(row.figure) for row in rows)


def test_replay_with_its_plain_backtest_floor_is_judged_on_the_ratio(
    run_all: ModuleType,
) -> None:
    output = (
        "replay hourly 20,800 bars x 2 sleeves: 1.200 (1.1-1.3) s  (3 guard actions)\n"
        "  floor, the plain backtest of the same sleeves: 1.000 (0.9-1.1) s\n"
    )

    replay, _, _ = run_all.read_replay(output)

    assert (replay.floor, replay.target, replay.met) == (1.0, "<= 1.5x", True)
    assert replay.ratio == pytest.approx(1.2)


def test_the_minute_guard_is_judged_warm_and_cold_against_bare_numpy_measured_alike(
    run_all: ModuleType,
) -> None:
    output = (
        "backtest + guard, 2,628,000 1m bars: 0.500 (0.4-0.9) s wall, 0.400 (0.4-0.8) s CPU"
        "  5.26 M bars/s (warm: 3 calls after a warm-up, interleaved with the floor's)\n"
        "  of which run_backtest alone: 0.150 (0.1-0.2) s wall, 0.150 (0.1-0.2) s CPU\n"
        "  bare numpy backtest: 0.100 (0.09-0.2) s wall, 0.100 (0.09-0.2) s CPU  26 M bars/s\n"
        "backtest + guard, cold first call in a fresh process: 2.000 (2-2) s wall,"
        " 1.800 (1.8-1.8) s CPU\n"
        "  bare numpy backtest, cold first call in a fresh process: 0.200 (0.2-0.2) s wall,"
        " 0.150 (0.15-0.15) s CPU\n"
    )

    _, warm, cold = run_all.read_replay(output)

    assert warm.name == "backtest + guard, 2.63 M 1m bars vs bare numpy, warm (wall; CPU 4.00x)"
    assert (warm.figure, warm.floor, warm.target, warm.met) == (0.5, 0.1, "<= 5x", True)
    assert cold.name == "backtest + guard, 2.63 M 1m bars vs bare numpy, cold (wall; CPU 12.00x)"
    assert (cold.figure, cold.floor, cold.met) == (2.0, 0.2, False)
    assert cold.ratio == pytest.approx(10.0)


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


def test_the_backtest_floor_computes_stagectls_metrics(run_all: ModuleType) -> None:
    # benchmarks/backtest_e2e.py times stagectl against a bare script; the ratio means
    # something only while the script computes the same numbers (here on bundled bars)
    import backtest_e2e

    from stagectl.data.bundled import SAMPLE_DIR

    bars, _ = backtest_e2e.tiled_bars(SAMPLE_DIR, 20_000)
    ours = backtest_e2e.comparable(backtest_e2e.stagectl_backtest(bars))
    worst, where = backtest_e2e.largest_difference(ours, backtest_e2e.bare_backtest(bars))
    assert worst <= 1e-12, where


def test_peers_says_so_when_vectorbt_is_absent(
    run_all: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import peers

    monkeypatch.setattr(peers.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(sys, "argv", ["peers.py"])
    peers.main()  # returns: exit status 0
    assert capsys.readouterr().out == "vectorbt not installed\n"
