"""run-live's in-loop risk guard: its cost against the loop without it, and flat in the run.

Runs ``run-live --paper`` in-process on the bundled ETH/SOL hourly data (the packaged
configs, a fresh temporary home each time) and prints:

1. the figure: a 30-day replay with the guard evaluated at every bar close (hourly, as
   the strategy config says); its floor, measured in the same invocation: the same
   replay with ``guard=False``; the ratio (target <= 2x), for the whole replay (data
   load and artifacts included) and per bar (the median step); each the median of
   ``--repeat`` runs, the two kinds alternated;
2. the figure: the time per bar, guard included, of the last 30 days of a 365-day run,
   and the guard's own time per bar there; its floors: the same 30 days replayed as a
   fresh 30-day run, and as the end of a fresh 60-day run (whose indicator windows are
   all full, as the long run's are); the ratios (target ~1: the guard reads no history,
   so a bar costs the same on day 31 and on day 365).

The guard config is the packaged one with the thresholds of its position-changing rules
(FLATTEN_ALL, REDUCE_RISK_50, DISABLE_SLEEVE) out of reach: every rule is still evaluated
and every decision recorded each hour, but the guarded run trades the same bars as the
floor, so the difference is the guard's cost and not a flattened book's idle bars.

Whole replays are timed on the wall clock. A bar's time is the CPU time of the loop's
thread between two step callbacks (the bar's step plus the previous bar's guard; the
loop and SQLite run on that one thread), median over the window: on a shared machine
the wall time of a 1 ms bar mostly measures the other processes. The guard's own time
is the same clock around ``LoopGuard.after_bar``. Usage:

    python benchmarks/loop_guard.py [--days 365] [--month-days 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from summary import Row, add_option, emit

from stagectl.config.home import Home
from stagectl.services.live import run as run_live
from stagectl.services.live.guard import LoopGuard

END = datetime(2026, 4, 30, 23, tzinfo=UTC)
PACKAGED = Path(__file__).parents[1] / "config"
OUT_OF_REACH = {
    "sharpe_collapse": -1e9,
    "mdd_limit": 1e9,
    "return_30d_limit": -1e9,
    "slippage_high_5d": 1e9,
    "sleeve_mdd_limit": 1e9,
}


def _home(root: Path) -> Home:
    config = root / "config"
    config.mkdir(parents=True)
    shutil.copy(PACKAGED / "futures_alt_ensemble.yaml", config)
    guard = yaml.safe_load((PACKAGED / "risk_guard_alt_ensemble.yaml").read_text())
    for rule in guard["rules"]:
        rule["value"] = OUT_OF_REACH.get(rule["id"], rule["value"])
    (config / "risk_guard_alt_ensemble.yaml").write_text(yaml.safe_dump(guard, sort_keys=False))
    return Home(root=root)


@dataclass
class Replay:
    bars: list[float]
    """Time between two step callbacks: a bar's step plus the previous bar's guard."""
    guard: list[float]
    """Time inside the in-loop guard (latch and evaluation) after each bar."""
    total: float
    result: Any


@contextmanager
def timing_the_guard(into: list[float]) -> Iterator[None]:
    """Time ``LoopGuard.after_bar`` (a benchmark's probe, not a code path)."""
    original = LoopGuard.after_bar

    def timed(self: LoopGuard, *args: Any) -> list[str]:
        began = time.thread_time()
        try:
            return original(self, *args)
        finally:
            into.append(time.thread_time() - began)

    LoopGuard.after_bar = timed  # type: ignore[method-assign]
    try:
        yield
    finally:
        LoopGuard.after_bar = original  # type: ignore[method-assign]


def replay(days: int, *, guard: bool) -> Replay:
    """A fresh ``days``-long paper run ending at ``END``, timed bar by bar."""
    start = END - timedelta(days=days) + timedelta(hours=1)
    bars: list[float] = []
    guarded: list[float] = []
    last = [0.0]

    def on_step(data: Any, outcome: Any) -> None:
        now = time.thread_time()
        bars.append(now - last[0])
        last[0] = now

    with tempfile.TemporaryDirectory() as root, timing_the_guard(guarded):
        home = _home(Path(root))
        began = time.perf_counter()
        last[0] = time.thread_time()
        result = run_live.run(
            run_live.RunLiveRequest(start=start, end=END, guard=guard),
            home=home,
            on_step=on_step,
        )
        total = time.perf_counter() - began
    return Replay(bars[1:], guarded, total, result)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--month-days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    add_option(parser)
    args = parser.parse_args()
    month = args.month_days
    floors, figures = [], []
    for _ in range(args.repeat):  # alternated, so a busy spell of the machine hits both
        floors.append(replay(month, guard=False))
        figures.append(replay(month, guard=True))
    floor, figure = floors[0].result, figures[0].result
    assert (figure.fills, figure.equity) == (floor.fills, floor.equity)  # the same trading
    total = statistics.median(r.total for r in figures)
    bare = statistics.median(r.total for r in floors)
    per_bar = statistics.median(statistics.median(r.bars) for r in figures)
    per_bare = statistics.median(statistics.median(r.bars) for r in floors)
    own = statistics.median(statistics.median(r.guard) for r in figures)
    print(
        f"in-loop risk guard: {figure.bars} bars ({month} days of 1h bars), evaluated at "
        f"every bar close; {figure.fills} fills, as without it (median of {args.repeat} runs)"
    )
    print(f"  figure (the replay with the guard):  {total:.2f} s")
    print(f"  floor  (the same with guard=False):  {bare:.2f} s")
    print(f"  ratio figure/floor: {total / bare:.2f}x (target <= 2x)")
    print(
        f"  per bar (CPU): {ms(per_bar)} with the guard, {ms(per_bare)} without "
        f"({per_bar / per_bare:.2f}x); the guard itself {ms(own)} a bar (median)"
    )

    window = month * 24
    fresh, warm = [replay(month, guard=True)], [replay(2 * month, guard=True)]
    long_run = replay(args.days, guard=True)
    warm.append(replay(2 * month, guard=True))
    fresh.append(replay(month, guard=True))  # before and after: both see the machine's load

    def bar(runs: list[Replay]) -> float:
        return statistics.median(statistics.median(r.bars[-window:]) for r in runs)

    def own(runs: list[Replay]) -> float:
        return statistics.median(statistics.median(r.guard[-window:]) for r in runs)

    tail, own_tail = statistics.median(long_run.bars[-window:]), own([long_run])
    print(
        f"in-loop risk guard over {long_run.result.bars} bars ({args.days} days, "
        f"{long_run.total:.1f} s): its last {month} days, per bar (CPU) and the guard's own"
    )
    print(
        f"  figure (end of the {args.days}-day run):   {ms(tail)} a bar, the guard {ms(own_tail)}"
    )
    print(
        f"  floor  (a fresh {month}-day run):      {ms(bar(fresh))} a bar, the guard "
        f"{ms(own(fresh))}: ratio {tail / bar(fresh):.2f}x a bar, "
        f"{own_tail / own(fresh):.2f}x the guard (target ~1)"
    )
    print(
        f"  floor  (the same {month} days ending a fresh {2 * month}-day run, every window full): "
        f"{ms(bar(warm))} a bar, the guard {ms(own(warm))}: ratio {tail / bar(warm):.2f}x a "
        f"bar, {own_tail / own(warm):.2f}x the guard"
    )
    early = slice(window, 2 * window)  # days 31-60: every window full, as at the end
    own_early = statistics.median(long_run.guard[early])
    print(
        f"  in the same process, days {month + 1}-{2 * month} of the run: "
        f"{ms(statistics.median(long_run.bars[early]))} a bar, the guard {ms(own_early)}: "
        f"ratio {tail / statistics.median(long_run.bars[early]):.2f}x a bar, "
        f"{own_tail / own_early:.2f}x the guard (the steadier view on a shared machine)"
    )
    print(
        f"  (a fresh {month}-day run is the cheaper floor: its 20-day Sharpe exists only "
        f"from day 20 and its 30-day figures at its last bar, so most of its evaluations "
        f"skip them; median of 2 runs each, one before and one after the long run)"
    )
    if args.summary_json:
        emit(
            [
                Row(
                    f"run-live {month}-day replay with the guard vs guard=False",
                    total,
                    "s",
                    bare,
                    total / bare,
                    "<= 2x",
                    total / bare <= 2.0,
                ),
                Row(
                    f"guarded bar (CPU) at the end of {args.days} days vs a fresh {month}-day run",
                    tail * 1e3,
                    "ms",
                    bar(fresh) * 1e3,
                    tail / bar(fresh),
                    "~1",
                ),
            ]
        )


if __name__ == "__main__":
    main()
