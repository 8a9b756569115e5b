"""Ledger import throughput and memory, `metrics window` against ledger size, and
regime-analyze over a year (with an empty ledger and with the benchmark's ledger, whose fills
lie after the candles).

Run: python benchmarks/ledger.py [--fills 1000000] [--data DIR] [--no-regimes]
[--window-also 5000000]
Each figure is printed next to a floor measured in the same run, and their ratio, because
the shared machine's speed varies (issue 13, docs/performance.md):

- import throughput (``metrics import`` in its own process) against a plain Python ``csv``
  reader + one ``executemany`` of the same rows into an on-disk table with the fills'
  columns and unique key (measured before and after the import; target >= 0.8x);
- the import process's peak memory (``VmHWM``; target <= 250 MB at 5 M fills), next to
  that of a process that only imports the same modules;
- ``metrics window --hours 1`` over the N-fill ledger (and over each ``--window-also``
  size) against the same over a 100 k-fill ledger built in the same run (in-process
  service time, wall and CPU, the two called alternately; and end to end; target <= 1.2x).

While the import runs, a second process stands in for a paper run: it records one fill
every 10 ms through ``state.ledger.insert_fills`` (a busy timeout of 60 s, so it measures
how long it waited instead of failing), and the benchmark prints its longest wait next to
the longest write transaction the import held. The regime-analyze year is real SOLUSDT 1m
bars from ``../shared/data``, or the bundled hourly bars without it (it says which). Not
part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from market_data import MarketData, market_data, sol_perp_bars

from stagectl.config.home import Home
from stagectl.services.ledger import importer as metrics_import
from stagectl.services.ledger import regime_analyze
from stagectl.state.db import open_state

HEADER = "timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity\n"


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    runs, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), result


def write_fills_csv(path: Path, n: int) -> str:
    """A maker's fills: 3-dp sizes, a 3-dp SOL-like price walk, 1-2000 ms apart, rebates."""
    rng = np.random.default_rng(7)
    price = 150_000 + np.cumsum(rng.integers(-3, 4, n))
    qty = rng.integers(1, 1000, n)
    sides = np.where(rng.random(n) < 0.5, "buy", "sell")
    start = np.datetime64("2025-01-01T00:00:00", "us")
    stamps = start + np.cumsum(rng.integers(1_000, 2_000_000, n)).astype("timedelta64[us]")
    texts = np.datetime_as_string(stamps, unit="us")
    with path.open("w") as handle:
        handle.write(HEADER)
        for k in range(n):
            p, q = int(price[k]), int(qty[k])
            handle.write(
                f"{texts[k]}Z,{k},SOLUSDT,{sides[k]},{p // 1000}.{p % 1000:03d},"
                f"{q // 1000}.{q % 1000:03d},-0.0001,USDT,maker\n"
            )
    return f"{texts[-1]}Z"


def probe_writer(state: Path, stop: Path, report: Path) -> None:
    """A paper run's stand-in: one fill every 10 ms, each in its own write transaction,
    until ``stop`` exists; writes its longest wait and the number of failures to
    ``report``."""
    from stagectl.domain.types import Fill
    from stagectl.state.ledger import insert_fills

    waits, failures = [], 0
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    with open_state(state, busy_timeout_ms=60_000) as db:
        while not stop.exists():
            k = len(waits)
            fill = Fill(
                account="probe",
                trade_id=f"BTCUSDT:{k}",
                symbol="BTCUSDT",
                side="buy" if k % 2 else "sell",
                qty=Decimal("0.001"),
                price=Decimal("50000"),
                fee=Decimal("0"),
                ts=t0 + timedelta(seconds=k),
                source="paper",
            )
            start = time.perf_counter()
            try:
                insert_fills(db, [fill])
            except Exception:
                failures += 1
            waits.append(time.perf_counter() - start)
            time.sleep(0.01)
    report.write_text(
        json.dumps({"writes": len(waits), "max_s": max(waits, default=0.0), "failures": failures})
    )


FILL_COLUMNS = (
    "id INTEGER PRIMARY KEY, exchange TEXT NOT NULL, trade_id TEXT NOT NULL, run_id TEXT,"
    " client_order_id TEXT, exchange_order_id TEXT, symbol TEXT NOT NULL, side TEXT NOT NULL,"
    " qty TEXT NOT NULL, price TEXT NOT NULL, fee TEXT NOT NULL, fee_currency TEXT,"
    " liquidity TEXT, ts TEXT NOT NULL, source TEXT NOT NULL, import_id INTEGER,"
    " UNIQUE (exchange, trade_id)"
)


def floor_csv_executemany(csv_path: Path, db_path: Path) -> float:
    """Seconds for the plain way: the ``csv`` module reads the file and one
    ``executemany`` writes every row into an on-disk table with the fills' columns and
    unique key, in one transaction (no validation, no index but the key)."""
    db_path.unlink(missing_ok=True)
    conn = sqlite3.connect(db_path)
    conn.execute(f"CREATE TABLE fills ({FILL_COLUMNS})")
    t0 = time.perf_counter()
    with csv_path.open(newline="") as handle, conn:
        reader = csv.reader(handle)
        next(reader)
        conn.executemany(
            "INSERT INTO fills (exchange, trade_id, symbol, side, price, qty, fee,"
            " fee_currency, liquidity, ts, source) VALUES (?,?,?,?,?,?,?,?,?,?,'import')",
            (
                ("bench", f"{r[2]}:{r[1]}", r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[0])
                for r in reader
            ),
        )
    seconds = time.perf_counter() - t0
    conn.close()
    db_path.unlink()
    return seconds


def peak_mb() -> float:
    """This process's peak resident memory: ``VmHWM``, which belongs to the program the
    process runs (``ru_maxrss`` carries over the parent's size at fork across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def import_child(csv_path: Path, home: Path) -> None:
    """``metrics import`` of ``csv_path`` in this process; prints its figures as JSON."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    request = metrics_import.ImportRequest(path=csv_path, account="bench")
    result = metrics_import.run(request, home=Home.resolve(home))
    print(
        json.dumps(
            {
                "wall_s": time.perf_counter() - t0,
                "cpu_s": time.process_time() - cpu0,
                "peak_mb": peak_mb(),
                "inserted": result.inserted,
                "duplicates": result.duplicates,
                "longest_write_s": result.longest_write_s,
                "merge_transactions": result.merge_transactions,
            }
        )
    )


def run_import(csv_path: Path, home: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--import-child", str(csv_path), str(home)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def idle_child() -> None:
    """Prints the peak memory of this process after importing what an import uses."""
    import stagectl.services.ledger.batches
    import stagectl.state.ledger_imports
    import stagectl.state.ledger_merge  # noqa: F401

    print(json.dumps({"peak_mb": peak_mb()}))


def idle_peak_mb() -> float:
    """The peak memory of a process that imports what the import child imports, and stops."""
    out = subprocess.run(
        [sys.executable, __file__, "--idle-child"], check=True, capture_output=True, text=True
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["peak_mb"])


def bench_import(csv_path: Path, home: Path, n: int) -> None:
    floor_before = floor_csv_executemany(csv_path, home.parent / "floor.sqlite")
    state = Home.resolve(home).state_path
    open_state(state).close()
    stop, report = home / "probe.stop", home / "probe.json"
    probe = subprocess.Popen(
        [sys.executable, __file__, "--probe", str(state), str(stop), str(report)]
    )
    time.sleep(1.0)  # the probe is writing before the import starts
    result = run_import(csv_path, home)
    stop.touch()
    probe.wait()
    waited = json.loads(report.read_text())
    floor_after = floor_csv_executemany(csv_path, home.parent / "floor.sqlite")
    floor_s = (floor_before + floor_after) / 2
    total_s, cpu_s = result["wall_s"], result["cpu_s"]
    print(
        f"import of {n:,} fills (CSV, own process): {total_s:.2f} s = {n / total_s:,.0f} fills/s"
        f" (CPU {cpu_s:.2f} s); floor csv + executemany {floor_s:.2f} s = {n / floor_s:,.0f}"
        f" rows/s (before {floor_before:.2f} s, after {floor_after:.2f} s);"
        f" ratio {floor_s / total_s:.2f}x of the floor's throughput (target >= 0.8)"
    )
    idle = idle_peak_mb()
    print(
        f"  import peak memory {result['peak_mb']:.0f} MB; a process importing the same"
        f" modules {idle:.0f} MB; ratio {result['peak_mb'] / idle:.2f}x (target <= 250 MB"
        " at 5 M fills)"
    )
    print(
        f"  longest write transaction the import held: {result['longest_write_s'] * 1000:.0f} ms"
        f" over {result['merge_transactions']} transactions; a concurrent writer"
        f" (one fill per 10 ms) waited at most {waited['max_s'] * 1000:.0f} ms,"
        f" {waited['failures']} failures in {waited['writes']} writes"
    )
    again = run_import(csv_path, home)
    print(
        f"  re-import (all {again['duplicates']:,} already recorded): {again['wall_s']:.2f} s"
        f" ({again['wall_s'] / floor_s:.2f}x the floor's time); inserted the first time"
        f" {result['inserted']:,}"
    )


def window_request(home: Path, until: str) -> Callable[[], Any]:
    """``metrics window --hours 1`` ending at ``until`` over ``home``'s ledger, in process."""
    from stagectl.services.ledger import window

    request = window.WindowRequest(
        length_s=3600, until=datetime.fromisoformat(until.replace("Z", "+00:00"))
    )
    return lambda: window.run(request, home=Home.resolve(home))


def service_times(big: Callable[[], Any], small: Callable[[], Any]) -> list[tuple[float, float]]:
    """Median (wall, CPU) seconds of the two services, called alternately (15 pairs) after a
    warm-up call each, so the machine's load weighs on both alike (warm figures)."""
    big(), small()
    runs: list[list[tuple[float, float]]] = [[], []]
    for _ in range(15):
        for k, call in enumerate((big, small)):
            t0, cpu0 = time.perf_counter(), time.process_time()
            call()
            runs[k].append((time.perf_counter() - t0, time.process_time() - cpu0))
    return [
        (statistics.median(w for w, _ in pairs), statistics.median(c for _, c in pairs))
        for pairs in runs
    ]


def command_time(home: Path, until: str) -> float:
    """Median seconds of ``stagectl metrics window --hours 1`` end to end (3 runs)."""
    env = {**os.environ, "STAGECTL_HOME": str(home)}
    command = [sys.executable, "-m", "stagectl", "metrics", "window", "--hours", "1"]
    command += ["--until", until, "--json"]
    wall_s, _ = timed(lambda: subprocess.run(command, env=env, check=True, capture_output=True))
    return wall_s


def bench_window(home: Path, until: str, small_home: Path, small_until: str, n: int) -> None:
    """The window over ``home`` (n fills) against the same over the 100 k-fill ledger."""
    (service, cpu), (small_service, small_cpu) = service_times(
        window_request(home, until), window_request(small_home, small_until)
    )
    wall, small_wall = command_time(home, until), command_time(small_home, small_until)
    print(
        f"metrics window --hours 1 over {n:,} fills: service {service * 1000:.0f} ms"
        f" (CPU {cpu * 1000:.0f} ms), end to end {wall:.2f} s; floor (the same over 100,000"
        f" fills) {small_service * 1000:.0f} ms (CPU {small_cpu * 1000:.0f} ms),"
        f" {small_wall:.2f} s; ratio {service / small_service:.2f}x service"
        f" (CPU {cpu / small_cpu:.2f}x), {wall / small_wall:.2f}x end to end (target <= 1.2)"
    )


def bench_startup() -> None:
    startup_s, _ = timed(
        lambda: subprocess.run(
            [sys.executable, "-m", "stagectl", "--version"], check=True, capture_output=True
        )
    )
    print(f"  (stagectl --version alone: {startup_s:.2f} s)")


def year_of_candles(data: MarketData, out: Path, bars: int = 525_600) -> None:
    """The real SOL perp 1m files (the bundled 1h file without them), tiled to ``bars``
    one-minute bars with new contiguous times."""
    paths, source = sol_perp_bars(data)
    print(f"regime-analyze data: {source}")
    real = pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)
    tiled = pd.concat([real] * (bars // len(real) + 1), ignore_index=True).iloc[:bars].copy()
    times = pd.date_range("2024-01-01", periods=bars, freq="1min", tz="UTC")
    tiled["timestamp"] = times.strftime("%Y-%m-%dT%H:%M:%SZ")
    with gzip.open(out, "wt") as handle:
        tiled.to_csv(handle, index=False)


REGIME_MODULES = (
    "numpy",
    "pandas",
    "stagectl.cli.main",
    "stagectl.cli.regime_analyze",
    "stagectl.config.loader",
    "stagectl.data.segments",
    "stagectl.domain.indicators",
    "stagectl.domain.regimes",
    "stagectl.services.ledger.reads",
    "stagectl.services.ledger.regime_analyze",
)  # what ``regime-analyze --json`` imports (its lazy imports included)


def cpu_and_wall(fn: Callable[[], Any]) -> tuple[float, float]:
    """One call's CPU time (this process, every thread) and wall time, in seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def bench_regimes(data: MarketData, work: Path, ledger_home: Path, fills: int) -> None:
    """regime-analyze over a year of 2024 candles, with an empty ledger and with the
    benchmark's ledger, whose fills (2025) all lie after the candles: they must cost
    nothing (the ledger side reads only the fills inside the candles' range).

    Warm: in this process after one warm-up call, the analysis and the candle read alone
    (its floor: ``load_candles``) called alternately, medians of 5, CPU and wall. Cold: the
    command end to end in a fresh process (``--json``), median of 3, next to a fresh process
    that only imports what it imports (the import share)."""
    candles = work / "binance_perp_SOLUSDT_1m_ohlcv_year.csv.gz"
    year_of_candles(data, candles)
    request = regime_analyze.RegimeRequest(symbol="SOLUSDT", candles=(candles,))
    bars = len(regime_analyze.load_candles((candles,)).frame)
    for label, home in (
        ("an empty ledger", work / "empty-home"),
        (f"{fills:,} fills", ledger_home),
    ):
        regime_analyze.run(request, home=Home.resolve(home))
        runs, reads = [], []
        for _ in range(5):
            runs.append(
                cpu_and_wall(lambda h=home: regime_analyze.run(request, home=Home.resolve(h)))
            )
            reads.append(cpu_and_wall(lambda: regime_analyze.load_candles((candles,))))
        cpu, wall = (statistics.median(r[k] for r in runs) for k in (0, 1))
        read_cpu, read_wall = (statistics.median(r[k] for r in reads) for k in (0, 1))
        print(
            f"regime-analyze over {bars:,} one-minute bars, {label}: {wall:.2f} s"
            f" (warm, CPU {cpu:.2f} s); of which reading and validating the CSV"
            f" {read_wall:.2f} s (CPU {read_cpu:.2f} s), the analysis {wall - read_wall:.2f} s"
            f" (CPU {cpu - read_cpu:.2f} s)"
        )
    env = {**os.environ, "STAGECTL_HOME": str(work / "empty-home")}
    command = [sys.executable, "-m", "stagectl", "regime-analyze", "--candles", str(candles)]
    cold_s, _ = timed(
        lambda: subprocess.run([*command, "--json"], env=env, check=True, capture_output=True)
    )
    imports = "import " + ", ".join(REGIME_MODULES)
    import_s, _ = timed(lambda: subprocess.run([sys.executable, "-c", imports], check=True))
    print(
        f"  cold, end to end in a fresh process: {cold_s:.2f} s, of which importing"
        f" (a process that only imports the modules the command imports) {import_s:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--no-regimes", action="store_true", help="skip regime-analyze")
    parser.add_argument(
        "--window-also",
        type=int,
        nargs="*",
        default=[],
        metavar="N",
        help="also time metrics window over ledgers of these sizes (e.g. 1000000 5000000)",
    )
    parser.add_argument("--probe", nargs=3, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--import-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--idle-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe_writer(*args.probe)
        return
    if args.import_child:
        import_child(*args.import_child)
        return
    if args.idle_child:
        idle_child()
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv_path = work / "fills.csv"
        last = write_fills_csv(csv_path, args.fills)
        bench_import(csv_path, work / "home", args.fills)
        small_last = write_fills_csv(work / "small.csv", 100_000)
        run_import(work / "small.csv", work / "small-home")
        bench_window(work / "home", last, work / "small-home", small_last, args.fills)
        for n in args.window_also:
            big_last = write_fills_csv(work / "big.csv", n)
            run_import(work / "big.csv", work / f"home-{n}")
            (work / "big.csv").unlink()
            bench_window(work / f"home-{n}", big_last, work / "small-home", small_last, n)
            shutil.rmtree(work / f"home-{n}")
        bench_startup()
        if not args.no_regimes:
            bench_regimes(market_data(args.data), work, work / "home", args.fills)


if __name__ == "__main__":
    main()
