"""run-live's cost per bar over a one-year paper replay: flat in the run's length?

Runs ``run-live --paper`` in-process on the bundled ETH/SOL hourly data (the packaged
default configs, circuit breakers on, a fresh temporary home) over one year of bars and
times every bar step (decide, record, send, the paper market, settle). Prints:

- the whole replay in bars/s (steps only, and including data load and artifacts);
- the figure: the time per bar of the *last* month of the year-long run;
- its floor, measured in the same invocation: the time per bar of those same bars replayed
  as a fresh month-long run (same bars, same market: only the run's length differs);
- the ratio (issue 10: within 1.2x; the replay >= 500 bars/s), and, for information, the
  year's last month against its first (different markets trade differently).

A bar's time is the wall time between two step callbacks (median of the month, so a
scheduler hiccup on a shared machine does not decide the figure; the mean is printed
too). Usage:

    python benchmarks/paper_replay.py [--days 365] [--month-days 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from summary import Row, add_option, emit

from stagectl.config.home import Home
from stagectl.services.live import run as run_live

END = datetime(2026, 4, 30, 23, tzinfo=UTC)


def replay(days: int) -> tuple[list[float], float, Any]:
    """Per-bar step times (s) of a fresh ``days``-long run ending at ``END``, and its wall
    time."""
    start = END - timedelta(days=days) + timedelta(hours=1)
    steps: list[float] = []
    last = [0.0]

    def on_step(data: Any, outcome: Any) -> None:
        now = time.perf_counter()
        steps.append(now - last[0])
        last[0] = now

    with tempfile.TemporaryDirectory() as root:
        began = time.perf_counter()
        last[0] = began
        result = run_live.run(
            run_live.RunLiveRequest(start=start, end=END),
            home=Home(root=Path(root)),
            on_step=on_step,
        )
        total = time.perf_counter() - began
    return steps, total, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--month-days", type=int, default=30)
    add_option(parser)
    args = parser.parse_args()
    alone, _, _ = replay(args.month_days)
    steps, total, result = replay(args.days)
    month = args.month_days * 24
    first, last = steps[1 : month + 1], steps[-month:]
    floor, figure = statistics.median(alone[1:]), statistics.median(last)
    print(
        f"paper replay: {result.bars} bars ({args.days} days of 1h bars), "
        f"{result.orders_sent} orders, {result.fills} fills, breakers on"
    )
    print(
        f"  whole replay: {result.bars / sum(steps):.0f} bars/s (steps), "
        f"{result.bars / total:.0f} bars/s including data load and artifacts ({total:.1f} s)"
    )
    print(
        f"  floor  (the last {args.month_days} days as a fresh run):   "
        f"{floor * 1e3:.3f} ms/bar median, {statistics.mean(alone[1:]) * 1e3:.3f} mean"
    )
    print(
        f"  figure (the same days at the end of {args.days} days): "
        f"{figure * 1e3:.3f} ms/bar median, {statistics.mean(last) * 1e3:.3f} mean"
    )
    print(f"  ratio figure/floor: {figure / floor:.2f}x median (target <= 1.2x)")
    print(
        f"  for information, the year's last month / its first: "
        f"{figure / statistics.median(first):.2f}x median"
    )
    if args.summary_json:
        name = f"paper replay, last {args.month_days} days of {args.days}: time per bar"
        ratio = figure / floor
        emit([Row(name, figure * 1e3, "ms", floor * 1e3, ratio, "<= 1.2x", ratio <= 1.2)])


if __name__ == "__main__":
    main()
