"""Run every benchmark at a size that keeps the whole under 5 minutes, and print one table.

Each benchmark runs as its own process (this interpreter, the repository root as working
directory) with the options below and ``--summary-json``, and its last
``summary-json:`` line gives its rows: figure, floor measured in the same run, ratio,
target and whether it was met. ``ledger.py`` and ``replay.py`` have no such line; their
printed lines are read instead, and a figure whose line is missing or has changed shape
is shown as "not parsed". A benchmark that fails or runs past its time bound gets one
row saying so; the others still run.

Run: ``python benchmarks/run_all.py [--markdown] [--only NAME ...] [--log FILE]``.
Exit 0 when every target with a verdict was met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from summary import Row, parse

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Benchmark:
    script: str
    options: tuple[str, ...]
    size: str
    """The size it runs at here, in words (the defaults are larger)."""
    timeout_s: float
    read: Callable[[str], list[Row]] | None = None
    """For a benchmark without ``--summary-json``: its rows from the printed lines."""
    missed_exit: int | None = None
    """The exit code with which it reports a missed target (not a failure)."""


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _find(pattern: str, output: str) -> re.Match[str] | None:
    return re.search(pattern, output, flags=re.MULTILINE)


def _not_parsed(name: str) -> Row:
    return Row(f"{name}: not parsed", float("nan"), "")


def read_ledger(output: str) -> list[Row]:
    """Rows from ``ledger.py``'s printed lines (its format is not fixed)."""
    rows = []
    found = _find(
        r"^import of ([\d,]+) fills \(CSV, own process\): ([\d.]+) s .*"
        r"floor csv \+ executemany ([\d.]+) s",
        output,
    )
    if found:
        total, floor = _number(found[2]), _number(found[3])
        rows.append(
            Row(
                f"metrics import, {found[1]} fills vs csv + executemany",
                total,
                "s",
                floor,
                total / floor,
                "<= 1.25x (>= 0.8x its rate)",
                total / floor <= 1.25,
            )
        )
    else:
        rows.append(_not_parsed("metrics import"))
    memory = _find(
        r"import peak memory (\d+) MB; a process importing the same modules (\d+) MB", output
    )
    if memory:
        peak, bare = _number(memory[1]), _number(memory[2])
        rows.append(
            Row(
                "metrics import peak memory",
                peak,
                "MB",
                bare,
                peak / bare,
                "<= 250 MB",
                peak <= 250,
            )
        )
    else:
        rows.append(_not_parsed("metrics import memory"))
    window = _find(
        r"^metrics window --hours 1 over ([\d,]+) fills: service ([\d.]+) ms"
        r"(?: \(CPU ([\d.]+) ms\))?.*"
        r"floor \(the same over ([\d,]+) fills\) ([\d.]+) ms(?: \(CPU ([\d.]+) ms\))?",
        output,
    )
    if window:
        cpu = window[3] is not None and window[6] is not None  # CPU moves less with load
        figure = _number(window[3] if cpu else window[2])
        floor = _number(window[6] if cpu else window[5])
        rows.append(
            Row(
                f"metrics window --hours 1 at {window[1]} vs {window[4]} fills"
                f" (service{', CPU' if cpu else ''})",
                figure,
                "ms",
                floor,
                figure / floor,
                "<= 1.2x",
                figure / floor <= 1.2,
            )
        )
    else:
        rows.append(_not_parsed("metrics window"))
    regimes = re.findall(
        r"^regime-analyze over ([\d,]+) one-minute bars, ([^:]+): ([\d.]+) s", output, re.M
    )
    for bars, ledger, seconds in regimes:
        value = _number(seconds)
        name = f"regime-analyze, {bars} 1m bars, {ledger}"
        rows.append(Row(name, value, "s", target="< 1 s", met=value < 1.0))
    if not regimes:
        rows.append(_not_parsed("regime-analyze"))
    return rows


def read_replay(output: str) -> list[Row]:
    """Rows from ``replay.py``'s printed lines (its format is not fixed)."""
    rows = []
    hourly = _find(r"^replay hourly ([\d,]+) bars x (\d+) sleeves:\s+([\d.]+)", output)
    plain = _find(r"floor, the plain backtest of the same sleeves:\s+([\d.]+)", output)
    if hourly:
        value = _number(hourly[3])
        name = f"risk-guard replay, {hourly[1]} 1h bars x {hourly[2]}, hourly"
        if plain:  # the newer format measures the plain backtest as its floor
            floor = _number(plain[1])
            ratio = value / floor
            name += " vs plain backtest"
            rows.append(Row(name, value, "s", floor, ratio, "<= 1.5x", ratio <= 1.5))
        else:
            rows.append(Row(name, value, "s", target="< 2 s", met=value < 2.0))
    else:
        rows.append(_not_parsed("risk-guard replay"))
    rows.append(
        _minute_guard_row(
            output, "warm", "backtest \\+ guard, [\\d,]+ 1m bars", "bare numpy backtest:"
        )
    )
    rows.append(
        _minute_guard_row(
            output, "cold", "backtest \\+ guard, cold", "bare numpy backtest, cold[^:]*:"
        )
    )
    return rows


_WALL_CPU = r"\s+([\d.]+) \([^)]*\) s wall, ([\d.]+)"
"""A median wall time with its range, then the median CPU time (``replay.py``)."""


def _minute_guard_row(output: str, kind: str, ours: str, bare: str) -> Row:
    """``replay.py``'s backtest + guard on 2.63 M minute bars against bare numpy, ``kind``
    (warm or cold, lines starting ``ours`` and ``bare``): wall seconds, the CPU ratio in
    the name."""
    mine = _find(r"^" + ours + r"[^:]*:" + _WALL_CPU, output)
    floor = _find(r"^\s*" + bare + _WALL_CPU, output)
    if not (mine and floor):
        return _not_parsed(f"backtest + guard ({kind})")
    figure, base = _number(mine[1]), _number(floor[1])
    ratio, cpu = figure / base, _number(mine[2]) / _number(floor[2])
    name = f"backtest + guard, 2.63 M 1m bars vs bare numpy, {kind} (wall; CPU {cpu:.2f}x)"
    return Row(name, figure, "s", base, ratio, "<= 5x", ratio <= 5.0)


BENCHMARKS = (
    Benchmark("startup.py", ("--runs", "15"), "15 runs per command", 90, missed_exit=1),
    Benchmark("backtest_core.py", ("--repeat", "3"), "2,628,000 1m bars, 3 repeats", 60),
    Benchmark("backtest_e2e.py", ("--repeat", "5"), "2,628,000 1m bars, 5 interleaved pairs", 90),
    Benchmark("breakers.py", ("--repeat", "5"), "5 repeats", 30),
    Benchmark("ledger_fifo.py", ("--fills", "200000"), "200,000 fills", 45),
    Benchmark("paper_replay.py", ("--days", "180"), "180 days, last 30", 90),
    Benchmark(
        "loop_guard.py",
        ("--days", "60", "--month-days", "15", "--repeat", "1"),
        "15-day pair once, 60-day run",
        90,
    ),
    Benchmark("live_loop.py", ("--days", "7", "--live-bars", "12"), "7 days, 12 live bars", 45),
    Benchmark("research.py", ("--repeat", "3"), "3 repeats", 60),
    Benchmark(
        "research_grid.py",
        ("--bars", "100000", "--repeat", "1"),
        "18 cells on 100,000 1m bars per symbol, once",
        120,
    ),
    Benchmark("stress_lab.py", ("--runs", "3"), "3 runs", 45),
    Benchmark(
        "loader.py", ("--rows", "1000000", "--repeat", "3"), "1,000,000 1m bars, 3 pairs", 60
    ),
    Benchmark("ledger.py", ("--fills", "200000"), "200,000 fills", 90, read_ledger),
    Benchmark("replay.py", ("--repeat", "1"), "1 repeat", 90, read_replay),
)


@dataclass(frozen=True)
class Outcome:
    benchmark: Benchmark
    rows: list[Row]
    seconds: float


def run(benchmark: Benchmark, log: list[str]) -> Outcome:
    command = [sys.executable, str(HERE / benchmark.script), *benchmark.options]
    if benchmark.read is None:
        command.append("--summary-json")
    began = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            timeout=benchmark.timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        seconds = time.perf_counter() - began
        failed = f"{benchmark.script}: stopped after {benchmark.timeout_s:.0f} s"
        return Outcome(benchmark, [_not_parsed(failed)], seconds)
    seconds = time.perf_counter() - began
    log.append(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
    if done.returncode not in (0, benchmark.missed_exit):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Outcome(
            benchmark, [_not_parsed(f"{benchmark.script} exit {done.returncode}: {last}")], seconds
        )
    rows = benchmark.read(done.stdout) if benchmark.read else parse(done.stdout)
    return Outcome(benchmark, rows or [_not_parsed(benchmark.script)], seconds)


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if value != value:  # nan: nothing was read
        return "?"
    return f"{value:,.3g} {unit}".strip() if value < 1000 else f"{value:,.0f} {unit}".strip()


def cells(outcome: Outcome, row: Row) -> list[str]:
    ratio_value = row.ratio
    if ratio_value is None and row.floor:
        ratio_value = row.figure / row.floor
    ratio = "-" if ratio_value is None else f"{ratio_value:.2f}x"
    met = {True: "yes", False: "NO", None: "-"}[row.met]
    return [
        f"{outcome.benchmark.script}: {row.name}",
        _value(row.figure, row.unit),
        _value(row.floor, row.unit),
        ratio,
        row.target or "-",
        met,
    ]


def table(outcomes: Sequence[Outcome], *, markdown: bool, date: str = "") -> str:
    """The table; as Markdown with a date column when ``date`` is given."""
    head = ["benchmark", "figure", "floor", "ratio", "target", "met?"]
    body = [cells(o, r) for o in outcomes for r in o.rows]
    if markdown and date:
        head.append("date")
        body = [[*row, date] for row in body]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in body])
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    lines = []
    for row in [head, *body]:
        padded = [c.rjust(w) for c, w in zip(row, widths, strict=True)]
        padded[0] = row[0].ljust(widths[0])
        lines.append("  ".join(padded))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these (startup.py)")
    parser.add_argument("--log", type=Path, help="write every benchmark's own output to FILE")
    args = parser.parse_args()
    chosen = [b for b in BENCHMARKS if not args.only or b.script in args.only]
    load_before = " ".join(f"{value:.1f}" for value in os.getloadavg())
    started = datetime.now(UTC)
    log: list[str] = []
    outcomes = []
    for benchmark in chosen:
        print(f"{benchmark.script} ({benchmark.size}) ...", end=" ", file=sys.stderr, flush=True)
        outcome = run(benchmark, log)
        print(f"{outcome.seconds:.1f} s", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    total = (datetime.now(UTC) - started).total_seconds()
    if args.log:
        args.log.write_text("\n".join(log))
    print(table(outcomes, markdown=args.markdown, date=f"{started:%Y-%m-%d}"))
    sizes = "; ".join(
        f"{o.benchmark.script} {o.benchmark.size} ({o.seconds:.0f} s)" for o in outcomes
    )
    print(
        f"\n{started:%Y-%m-%d %H:%M} UTC, python {sys.version.split()[0]}, "
        f"load average {load_before} at the start, {total:.0f} s in all; sizes: {sizes}"
    )
    missed = any(r.met is False for o in outcomes for r in o.rows)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
