"""N concurrent paper runs against one PostgreSQL state: bars/s and transaction latency.

Starts a throwaway PostgreSQL server on 127.0.0.1 (``tests/pg.py``'s ``PgServer``: initdb
into a temporary directory, as the ``postgres`` user under root; by default with
PostgreSQL's durable settings, fsync and synchronous commit on, as a desk runs it), then
for each N replays N paper runs at once, each in its own process, its own home and run
id, on the bundled ETH/SOL hourly data, through run-live's service
(``services.live.run.run``, what ``stagectl --state postgresql://... run-live --paper``
calls) with breakers and the in-loop guard on. Every N gets a fresh database. Prints per
N:

- total bars/s (all runs' bars over the span from the first bar to the last, any run) and
  per-run bars/s (each run's bars over its own span; the median run);
- p50 and p99 of the write transactions' latency, ``BEGIN`` to the end of ``COMMIT``
  (waiting for the write lock included), timed inside the runs by the state's hook
  (``STAGECTL_TXN_TIMING_FILE``, off unless set);
- the floor: the same one run on a SQLite state, and the ratio of PostgreSQL's time per
  bar at N = 1 to it;
- after the N = 1 run, each table's rows and ``pg_total_relation_size`` (the figures
  ``docs/scaling.md`` scales to a desk).

Skips with a message (exit 0) where the PostgreSQL server binaries or psycopg are absent.
Usage (2 to 3 minutes at the defaults on this shared 2-core machine; too long for
``run_all.py``):

    python benchmarks/pg_concurrency.py [--days 7] [--n 1,2,4,8] [--no-fsync]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from summary import Row, add_option, emit

ROOT = Path(__file__).resolve().parents[1]
END = datetime(2026, 4, 30, 23, tzinfo=UTC)
TIMING_ENV = "STAGECTL_TXN_TIMING_FILE"


@dataclass(frozen=True)
class RunTimes:
    """One child's run: its bars, the wall-clock times of its first and last bar step and
    its process's CPU time."""

    bars: int
    first: float
    last: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return (self.bars - 1) / (self.last - self.first)


@dataclass(frozen=True)
class Round:
    n: int
    runs: list[RunTimes]
    latencies_us: list[int]

    @property
    def total_rate(self) -> float:
        span = max(r.last for r in self.runs) - min(r.first for r in self.runs)
        return (sum(r.bars for r in self.runs) - len(self.runs)) / span

    @property
    def run_rate(self) -> float:
        return statistics.median(r.rate for r in self.runs)

    def latency_ms(self, percent: int) -> float:
        cuts = statistics.quantiles(self.latencies_us, n=100, method="inclusive")
        return (cuts[percent - 1] if percent < 100 else max(self.latencies_us)) / 1e3


def child(state: str, home: str, days: int) -> None:
    """One paper run (in a process of its own); prints its RunTimes as JSON."""
    from stagectl.config.home import Home
    from stagectl.config.state_url import parse_state_location
    from stagectl.services.live import run as run_live

    steps: list[float] = []
    result = run_live.run(
        run_live.RunLiveRequest(
            start=END - timedelta(days=days) + timedelta(hours=1), end=END, new_run=True
        ),
        home=Home(root=Path(home), state_override=parse_state_location(state)),
        on_step=lambda data, outcome: steps.append(time.time()),
    )
    print(json.dumps({"bars": result.bars, "first": steps[0], "last": steps[-1],
                      "cpu_s": time.process_time()}))  # fmt: skip


def migrate(state: str) -> None:
    from stagectl.config.state_url import parse_state_location
    from stagectl.state.db import open_state

    open_state(parse_state_location(state)).close()


def play(n: int, state: str, days: int, work: Path) -> Round:
    """N runs at once on ``state``; their times and every write transaction's latency."""
    migrate(state)
    work.mkdir(parents=True, exist_ok=True)
    children, timings = [], []
    for i in range(n):
        home = work / f"home-{n}-{i}"
        home.mkdir()
        timing = work / f"txn-{n}-{i}.us"
        timings.append(timing)
        env = {**os.environ, TIMING_ENV: str(timing)}
        command = [sys.executable, __file__, "--child", state, str(home), str(days)]
        children.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True))
    runs = []
    for process in children:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"a paper run failed (exit {process.returncode})")
        runs.append(RunTimes(**json.loads(out.strip().splitlines()[-1])))
    latencies = [int(line) for t in timings for line in t.read_text().split()]
    return Round(n, runs, latencies)


def table_sizes(url: str) -> list[tuple[str, int, int]]:
    """(table, rows, pg_total_relation_size) for every table with rows."""
    import psycopg

    with psycopg.connect(url) as conn:
        names = [
            str(row[0])
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " ORDER BY tablename"
            )
        ]
        out = []
        for name in names:
            rows = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()
            size = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (f'"{name}"',))
            count, total = int(rows[0]), int(size.fetchone()[0])  # type: ignore[index]
            if count:
                out.append((name, count, total))
    return out


def describe(label: str, played: Round) -> None:
    cpu = statistics.mean(r.cpu_s for r in played.runs)
    span = max(r.last for r in played.runs) - min(r.first for r in played.runs)
    inside = sum(played.latencies_us) / 1e6 / span
    print(
        f"  {label:<22} total {played.total_rate:7.1f} bars/s   per run "
        f"{played.run_rate:7.1f} bars/s   txn p50 {played.latency_ms(50):6.2f} ms  "
        f"p99 {played.latency_ms(99):6.2f} ms  ({len(played.latencies_us)} txns, "
        f"{inside:.0%} of the span in a write transaction, {cpu:.1f} s CPU per run process)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--days", type=int, default=7, help="days of 1h bars per run")
    parser.add_argument("--n", default="1,2,4,8", help="the concurrent run counts")
    parser.add_argument("--no-fsync", action="store_true", help="run the server as the tests do")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    add_option(parser)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    sys.path.insert(0, str(ROOT))
    from tests.pg import PgServer, missing_reason

    reason = missing_reason()
    if reason is not None:
        print(f"pg_concurrency: skipped: {reason}")
        return
    counts = [int(part) for part in args.n.split(",")]
    durable = "fsync off (as the tests)" if args.no_fsync else "fsync and synchronous_commit on"
    print(
        f"{args.days} days of 1h bars per run ({args.days * 24} bars), breakers and guard on; "
        f"PostgreSQL 127.0.0.1, {durable}; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    server = PgServer.start(durable=not args.no_fsync)
    try:
        with tempfile.TemporaryDirectory() as root:
            work = Path(root)
            floor = play(1, str(work / "sqlite" / "stagectl.db"), args.days, work / "sqlite-runs")
            describe("SQLite, N = 1 (floor)", floor)
            rounds, sizes = [], []
            for n in counts:
                url = server.new_database()
                played = play(n, url, args.days, work)
                rounds.append(played)
                describe(f"PostgreSQL, N = {n}", played)
                if n == 1:
                    sizes = table_sizes(url)
    finally:
        server.stop()
    first = rounds[0]
    ratio = floor.run_rate / first.run_rate
    print(f"  ratio PostgreSQL / SQLite time per bar at N = {first.n}: {ratio:.2f}x")
    if sizes:
        print(f"  tables after one {args.days}-day paper run on PostgreSQL (rows, total bytes):")
        for name, count, total in sizes:
            print(f"    {name:<22} {count:>7} rows {total:>9} B  {total / count:8.0f} B/row")
    print(f"  load average after: {os.getloadavg()[0]:.1f}")
    if args.summary_json:
        emit(summary_rows(floor, rounds, ratio))


def summary_rows(floor: Round, rounds: list[Round], ratio: float) -> list[Row]:
    """N = 1's time per bar against SQLite's, each N's total bars/s and the largest N's
    p99 against N = 1's (no targets: issue 15 asks for the figures)."""
    first, last = rounds[0], rounds[-1]
    rows = [
        Row(f"pg concurrency, N = {first.n}: ms per bar vs SQLite", 1e3 / first.run_rate,
            "ms", 1e3 / floor.run_rate, ratio),
    ]  # fmt: skip
    for played in rounds[1:]:
        rows.append(
            Row(f"pg concurrency, N = {played.n}: total bars/s vs N = {first.n}",
                played.total_rate, "bars/s", first.total_rate,
                played.total_rate / first.total_rate)
        )  # fmt: skip
    p99, base = last.latency_ms(99), first.latency_ms(99)
    rows.append(Row(f"pg concurrency, N = {last.n}: txn p99", p99, "ms", base, p99 / base))
    return rows


if __name__ == "__main__":
    main()
