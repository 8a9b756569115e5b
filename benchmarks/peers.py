"""stagectl's backtest against vectorbt's on the same positions and bars, both warm.

Issue 13, item 2 asks the whole backtest to be faster than vectorbt warm on the same
strategy. vectorbt is not a dependency of stagectl: when it is not installed this prints
"vectorbt not installed" and exits 0 (``pip install vectorbt`` into the environment to
run it; its first call compiles numba kernels, which can take a minute, so this benchmark is
not part of ``run_all.py``).

The bars are those of ``backtest_e2e.py`` (2,628,000 tiled SOLUSDT 1m bars); the
strategy is its TSMOM-EMA, debounced and held one bar later. Both sides start from the
same held positions and trade at the open (vectorbt gets an order where the position
changes, a target percent of its equity): stagectl's ``run_backtest`` (fee + slippage,
no funding: vectorbt has none), its trades table, ``cost_summary`` and
``performance.summarize``; vectorbt's ``Portfolio.from_orders`` with target percent sizes
at the same prices and the same 8 bps per trade, then its total return, Sharpe, Sortino,
max drawdown, trade count, win rate and profit factor. Each is called once to warm up
(numba's compilation for vectorbt), then alternately; the medians are printed with the
two sides' total return, which agree to about the cost convention's difference.

Run: ``python benchmarks/peers.py [--bars N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from backtest_core import BARS_5Y_1M
from backtest_e2e import DEBOUNCE, FEE_BPS, INITIAL_EQUITY, LOOKBACK, SLIPPAGE_BPS, tiled_bars
from summary import Row, add_option, emit

from stagectl.domain.backtest import SleeveSpec, run_backtest
from stagectl.domain.performance import summarize
from stagectl.domain.strategies import debounce, held_positions, tsmom_ema
from stagectl.services.strategy.costs import cost_summary


def stagectl_run(opens: pd.Series, target: pd.Series, bar: str) -> dict[str, Any]:
    sleeve = SleeveSpec("SOLUSDT", opens, target, 1.0)
    result = run_backtest(
        [sleeve], fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS, initial_equity=INITIAL_EQUITY
    )
    metrics = summarize(result, bar)
    metrics["cost_model"] = cost_summary(result, 1.0)
    return metrics


def vectorbt_run(opens: pd.Series, orders: pd.Series, bar: str) -> dict[str, Any]:
    import vectorbt as vbt

    # vectorbt's shape checks turn a timezone-aware index into one Python object per bar
    # (about 96 % of its time on 200,000 bars); a naive UTC index spares it that
    portfolio = vbt.Portfolio.from_orders(
        close=opens.tz_localize(None),
        size=orders.tz_localize(None),
        size_type="targetpercent",
        fees=(FEE_BPS + SLIPPAGE_BPS) / 1e4,
        init_cash=INITIAL_EQUITY,
        freq=bar.replace("m", "min"),
    )
    trades = portfolio.trades
    return {
        "total_return": portfolio.total_return(),
        "sharpe": portfolio.sharpe_ratio(),
        "sortino": portfolio.sortino_ratio(),
        "max_drawdown": portfolio.max_drawdown(),
        "trades": trades.count(),
        "win_rate": trades.win_rate(),
        "profit_factor": trades.profit_factor(),
    }


def medians(calls: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=BARS_5Y_1M)
    parser.add_argument("--repeat", type=int, default=3)
    add_option(parser)
    args = parser.parse_args()
    if importlib.util.find_spec("vectorbt") is None:
        print("vectorbt not installed")
        return

    bars, described = tiled_bars(None, args.bars)
    print(f"data: {described}")
    opens = pd.Series(bars.open, index=bars.index)
    target = debounce(tsmom_ema(pd.Series(bars.close, index=bars.index), LOOKBACK), DEBOUNCE)
    held = held_positions(target, 1)
    # an order only where the position changes (NaN: none), as stagectl trades: a target
    # percent every bar would rebalance the drift every bar
    orders = held.where(held.diff().fillna(held) != 0)
    began = time.perf_counter()
    theirs = vectorbt_run(opens, orders, bars.bar)
    print(f"vectorbt first call (numba compilation): {time.perf_counter() - began:.1f} s")
    ours = stagectl_run(opens, target, bars.bar)
    print(
        f"total return: stagectl {ours['total_return']:.6g}, "
        f"vectorbt {float(np.asarray(theirs['total_return'])):.6g}; "
        f"trades: stagectl {ours['trades']:,}, vectorbt {int(theirs['trades']):,}"
    )
    times = medians(
        {
            "stagectl": lambda: stagectl_run(opens, target, bars.bar),
            "vectorbt": lambda: vectorbt_run(opens, orders, bars.bar),
        },
        args.repeat,
    )
    ratio = times["stagectl"] / times["vectorbt"]
    print(f"stagectl backtest + metrics (warm): {times['stagectl'] * 1e3:8.1f} ms")
    print(f"vectorbt from_orders + metrics (warm): {times['vectorbt'] * 1e3:8.1f} ms")
    print(f"ratio stagectl / vectorbt: {ratio:.2f}x (target < 1x)")
    if args.summary_json:
        emit(
            [
                Row(
                    f"backtest + metrics, {bars.open.size:,} {bars.bar} bars vs vectorbt warm",
                    times["stagectl"] * 1e3,
                    "ms",
                    times["vectorbt"] * 1e3,
                    ratio,
                    "< 1x",
                    ratio < 1.0,
                )
            ]
        )


if __name__ == "__main__":
    main()
