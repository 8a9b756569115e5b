"""Circuit breakers per bar: apply_breakers over the growing history vs BreakerTracker.

Input: the Alt Ensemble backtest on the bundled ETH/SOL 1h data (net returns and closed
trades from 2024-01-01), default ``BreakerSettings`` (24-bar vol, 720-bar percentile).

- old (run-live until now): at bar k, build the Series of the k returns and of the trades
  closed so far from the kept lists, run ``apply_breakers`` over them, take the last
  multiplier. Timed at k = 720 (the floor: a month into an hourly run), k = 8 760 (the
  figure: a year) and k = 17 520 (two years), median of ``--repeat`` runs.
- new: ``BreakerTracker.add_bar`` (and ``close_trade`` for the trades in between) fed
  bar by bar; the mean cost of the ``--block`` bars ending at the same k, median of
  ``--repeat`` replays.

For each way: the cost at each k, figure / floor and two years / one year; then old / new
at k = 8 760. The tracker's floor is taken while its 720-vol window still fills (it is
full from bar 744), so figure / floor shows the full window's cost; two years / one
year shows that from there the cost is flat.

Run: ``python benchmarks/breakers.py [--repeat 15] [--block 240]``. Not part of the test
suite.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
from summary import Row, add_option, emit

from stagectl.config.home import Home
from stagectl.domain.breaker_state import BreakerTracker
from stagectl.domain.breakers import BreakerSettings, apply_breakers
from stagectl.services.research import backtest
from stagectl.services.research.breakers import closed_trade_pnl

MARKS = [720, 8_760, 17_520]
"""A month (the floor), a year (the figure), two years of hourly bars."""


def history() -> tuple[list[pd.Timestamp], list[float], list[pd.Timestamp], list[float]]:
    """Bar stamps and returns, trade close stamps and pnl, of the bundled-data backtest."""
    with tempfile.TemporaryDirectory() as root:
        run = backtest.run(backtest.BacktestRequest(), home=Home.resolve(Path(root)))
    returns, trades = run.result.net_returns, closed_trade_pnl(run.result)
    return (
        list(pd.DatetimeIndex(returns.index)),
        returns.tolist(),
        list(pd.DatetimeIndex(trades.index)),
        trades.tolist(),
    )


def old_way(
    data: tuple[list[pd.Timestamp], list[float], list[pd.Timestamp], list[float]],
    bars: int,
    repeat: int,
) -> float:
    """Seconds for the multiplier of bar ``bars`` the way run-live computed it until now."""
    times, returns, closes, pnls = data
    known = sum(1 for c in closes if c < times[bars - 1])
    settings = BreakerSettings()
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        series = pd.Series(returns[:bars], index=pd.DatetimeIndex(times[:bars]), dtype=float)
        trades = pd.Series(pnls[:known], index=pd.DatetimeIndex(closes[:known]), dtype=float)
        apply_breakers(series, trade_pnl=trades, settings=settings).multiplier.iloc[-1]
        runs.append(time.perf_counter() - began)
    return statistics.median(runs)


def new_way(
    data: tuple[list[pd.Timestamp], list[float], list[pd.Timestamp], list[float]],
    marks: list[int],
    block: int,
) -> dict[int, float]:
    """Mean seconds per bar of the ``block`` bars ending at each mark, fed incrementally."""
    times, returns, closes, pnls = data
    tracker = BreakerTracker(BreakerSettings())
    costs: dict[int, float] = {}
    fed = 0
    began = 0.0
    for k in range(max(marks)):
        if k + block in marks:
            began = time.perf_counter()
        while fed < len(closes) and closes[fed] < times[k]:
            tracker.close_trade(closes[fed], pnls[fed])
            fed += 1
        tracker.add_bar(times[k], returns[k])
        if k + 1 in marks:
            costs[k + 1] = (time.perf_counter() - began) / block
    return costs


def _row(name: str, costs: dict[int, float], unit: float, label: str) -> str:
    cells = "".join(f"{costs[bars] / unit:>14.2f} {label}" for bars in MARKS)
    first, year, two_years = (costs[bars] for bars in MARKS)
    return f"  {name:<30}{cells}{year / first:>11.2f}x{two_years / year:>11.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--block", type=int, default=240)
    add_option(parser)
    args = parser.parse_args()
    data = history()
    old = {bars: old_way(data, bars, args.repeat) for bars in MARKS}
    repeats = [new_way(data, MARKS, args.block) for _ in range(args.repeat)]
    new = {bars: statistics.median(r[bars] for r in repeats) for bars in MARKS}
    print(
        f"circuit breakers per bar: Alt Ensemble backtest on the bundled ETH/SOL 1h data "
        f"({len(data[1])} bars, {len(data[3])} closed trades), default settings"
    )
    heads = "".join(f"{head:>17}" for head in ("bar 720 (floor)", "bar 8760", "bar 17520"))
    print(f"  {'':<30}{heads}{'8760/720':>12}{'17520/8760':>12}")
    print(_row("apply_breakers on the history", old, 1e-3, "ms"))
    print(_row("BreakerTracker, one bar", new, 1e-6, "us"))
    print(
        f"  at bar 8760 the tracker costs {new[8_760] / old[8_760]:.5f} of apply_breakers "
        f"({old[8_760] / new[8_760]:.0f}x less)"
    )
    print("  (the tracker's floor is taken while its 720-vol window fills: full from bar 744)")
    if args.summary_json:
        emit(
            [
                Row(
                    "breakers per bar at bar 8760 vs bar 720 (BreakerTracker)",
                    new[8_760] * 1e6,
                    "us",
                    new[720] * 1e6,
                    new[8_760] / new[720],
                ),
            ]
        )


if __name__ == "__main__":
    main()
