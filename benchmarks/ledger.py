"""Ledger import throughput, `metrics window` end to end, and regime-analyze over a year
(with an empty ledger and with the benchmark's ledger, whose fills lie after the candles).

Run: python benchmarks/ledger.py [--fills 1000000] [--data DIR]
Prints times and ratios against a baseline measured in the same run (a plain executemany of
the same rows, 14 values each, into an index-free in-memory table), because the shared
machine's speed varies; the import also reports this process's CPU time, which moves less
with other jobs than wall time. While the import runs, a second process stands in for a
paper run: it records one fill every 10 ms through ``state.ledger.insert_fills`` (a busy
timeout of 60 s, so it measures how long it waited instead of failing), and the benchmark
prints its longest wait next to the longest write transaction the import held. The
regime-analyze year is real SOLUSDT 1m bars from ``../shared/data``, or the bundled hourly
bars without it (it says which). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
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
from stagectl.data.trade_files import read_trades
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


def baseline_executemany(columns: Any) -> float:
    """Seconds for a plain executemany of the same rows (14 values each, as the fills table
    has) into an index-free in-memory table: the floor this machine sets right now."""
    fields = (
        columns.trade_id,
        columns.symbol,
        columns.side,
        columns.qty,
        columns.price,
        columns.fee,
        columns.fee_currency,
        columns.liquidity,
        columns.order_id,
        columns.ts,
    )
    rows = zip(*(column.tolist() for column in fields), strict=True)
    full = [("bench", f"{r[1]}:{r[0]}", None, None, *r[8:9], *r[1:8], r[9], "import") for r in rows]
    memory = sqlite3.connect(":memory:")
    memory.execute("CREATE TABLE f (" + ", ".join(f"c{i}" for i in range(14)) + ")")
    t0 = time.perf_counter()
    with memory:
        memory.executemany("INSERT INTO f VALUES (" + ",".join("?" * 14) + ")", full)
    return time.perf_counter() - t0


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


def bench_import(csv_path: Path, home: Path, n: int) -> None:
    parse_s, columns = timed(lambda: read_trades(csv_path, "csv", symbol=None), repeat=1)
    baseline_s = baseline_executemany(columns)
    del columns
    state = Home.resolve(home).state_path
    open_state(state).close()
    stop, report = home / "probe.stop", home / "probe.json"
    probe = subprocess.Popen(
        [sys.executable, __file__, "--probe", str(state), str(stop), str(report)]
    )
    time.sleep(1.0)  # the probe is writing before the import starts
    request = metrics_import.ImportRequest(path=csv_path, account="bench")
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = metrics_import.run(request, home=Home.resolve(home))
    total_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    stop.touch()
    probe.wait()
    waited = json.loads(report.read_text())
    insert_s = total_s - parse_s
    print(
        f"import of {n:,} fills (CSV): {total_s:.2f} s"
        f" = {n / total_s:,.0f} fills/s; total / baseline = {total_s / baseline_s:.2f}x"
        f" (CPU {cpu_s:.2f} s = {n / cpu_s:,.0f} fills/s)"
    )
    longest = getattr(result, "longest_write_s", None)
    held = "n/a" if longest is None else f"{longest * 1000:.0f} ms"
    print(
        f"  longest write transaction the import held: {held} over"
        f" {getattr(result, 'merge_transactions', 1)} transactions; a concurrent writer"
        f" (one fill per 10 ms) waited at most {waited['max_s'] * 1000:.0f} ms,"
        f" {waited['failures']} failures in {waited['writes']} writes"
    )
    print(
        f"  parse + validate alone {parse_s:.2f} s ({parse_s / baseline_s:.2f}x; the import"
        f" overlaps it with the write), total minus it ~{insert_s:.2f} s"
        f" ({insert_s / baseline_s:.2f}x)"
    )
    print(
        f"  baseline plain executemany of the same rows, no index, in memory: {baseline_s:.2f} s"
        f" ({n / baseline_s:,.0f} rows/s)"
    )
    t0 = time.perf_counter()
    again = metrics_import.run(request, home=Home.resolve(home))
    again_s = time.perf_counter() - t0
    print(
        f"  re-import (all {again.duplicates:,} already recorded): {again_s:.2f} s"
        f" ({again_s / baseline_s:.2f}x); inserted the first time {result.inserted:,}"
    )


def bench_window(home: Path, until: str) -> None:
    env = {**os.environ, "STAGECTL_HOME": str(home)}
    command = [sys.executable, "-m", "stagectl", "metrics", "window", "--hours", "1"]
    command += ["--until", until, "--json"]

    def once() -> None:
        subprocess.run(command, env=env, check=True, capture_output=True)

    wall_s, _ = timed(once)
    startup_s, _ = timed(
        lambda: subprocess.run(
            [sys.executable, "-m", "stagectl", "--version"], check=True, capture_output=True
        )
    )
    print(f"metrics window --hours 1 over the 1 M-fill ledger, end to end: {wall_s:.2f} s")
    print(f"  (stagectl --version alone: {startup_s:.2f} s; ratio {wall_s / startup_s:.1f}x)")


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


def bench_regimes(data: MarketData, work: Path, ledger_home: Path, fills: int) -> None:
    """regime-analyze over a year of 2024 candles, with an empty ledger and with the
    benchmark's ledger, whose fills (2025) all lie after the candles: they must cost
    nothing (the ledger side reads only the fills inside the candles' range)."""
    candles = work / "binance_perp_SOLUSDT_1m_ohlcv_year.csv.gz"
    year_of_candles(data, candles)
    load_s, loaded = timed(lambda: regime_analyze.load_candles((candles,)), repeat=1)
    request = regime_analyze.RegimeRequest(symbol="SOLUSDT", candles=(candles,))
    bars = len(loaded.frame)
    for label, home in (
        ("an empty ledger", work / "empty-home"),
        (f"{fills:,} fills", ledger_home),
    ):
        total_s, _ = timed(lambda h=home: regime_analyze.run(request, home=Home.resolve(h)))
        print(f"regime-analyze over {bars:,} one-minute bars, {label}: {total_s:.2f} s")
    print(f"  of which reading and validating the CSV: {load_s:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--probe", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe_writer(*args.probe)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv_path = work / "fills.csv"
        last = write_fills_csv(csv_path, args.fills)
        bench_import(csv_path, work / "home", args.fills)
        bench_window(work / "home", last)
        bench_regimes(market_data(args.data), work, work / "home", args.fills)


if __name__ == "__main__":
    main()
