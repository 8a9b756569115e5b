"""Throughput of the backtest core against a bare numpy version of the same arithmetic.

Five years of one-minute bars (2,628,000) are built by tiling the real SOLUSDT
perp 1m data of May-June 2025 (from ``../shared/data``; without it, the bundled
hourly SOLUSDT bars, and the benchmark says so); each tile is scaled so that its
first open equals the previous tile's last close, so the joined series has no jumps. Positions
come from ``tsmom_ema`` (lookback 1440 bars) with a 2-bar debounce and
``signal_delay`` 1; funding is the real SOL 8h funding tiled every 480 bars.

Run: ``python benchmarks/backtest_core.py [--data-dir DIR] [--repeat N]``.
Prints bars/second for ``backtest_core`` and for the bare numpy version, and
their ratio; not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from market_data import MarketData, market_data
from summary import Row, add_option, emit

from stagectl.domain.backtest import SleeveSpec, backtest_core, run_backtest
from stagectl.domain.strategies import debounce, held_positions, tsmom_ema

BARS_5Y_1M = 5 * 525_600
SOL_1M = "binance_perp_SOLUSDT_1m_ohlcv_2025-05.csv.gz"
SOL_1H = "binance_perp_SOLUSDT_1h_ohlcv.csv.gz"  # in the bundled sample too


def tiled_opens(source: Path, bars: int) -> tuple[np.ndarray, np.ndarray]:
    """Open and close prices tiled to ``bars`` rows, each tile scaled to join the previous."""
    frame = pd.read_csv(source)
    opens, closes = frame["open"].to_numpy(float), frame["close"].to_numpy(float)
    tiles = -(-bars // opens.size)
    # scale of tile j: product of (last close / first open) of the tiles before it
    step = closes[-1] / opens[0]
    scales = step ** np.arange(tiles)
    open_all = (opens[None, :] * scales[:, None]).ravel()[:bars]
    close_all = (closes[None, :] * scales[:, None]).ravel()[:bars]
    return open_all, close_all


def bare_numpy(
    open_: np.ndarray, held: np.ndarray, funding: np.ndarray, cost_rate: float
) -> np.ndarray:
    """The same per-bar arithmetic written inline, as one would without the library."""
    prev = np.concatenate(([0.0], held[:-1]))
    ret = np.concatenate(([0.0], open_[1:] / open_[:-1] - 1.0))
    net = (1.0 + prev * ret - prev * funding) * (1.0 - np.abs(held - prev) * cost_rate) - 1.0
    return np.cumprod(1.0 + net)


def library_core(
    open_: np.ndarray, held: np.ndarray, funding: np.ndarray, cost_rate: float
) -> np.ndarray:
    core = backtest_core(open_, held, funding, cost_rate)
    return np.cumprod(1.0 + core.net)


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=7)
    add_option(parser)
    args = parser.parse_args()

    data: MarketData = market_data(args.data_dir)
    source = data.path / (SOL_1M if data.has(SOL_1M) else SOL_1H)
    print(f"data: {source.name} from {data.describe()}")
    open_, close = tiled_opens(source, BARS_5Y_1M)
    index = pd.date_range("2020-01-01", periods=open_.size, freq="1min", tz="UTC")
    target = debounce(tsmom_ema(pd.Series(close, index=index), 1440), 2)
    held = held_positions(target, 1).to_numpy()
    rates = pd.read_csv(data.path / "binance_perp_SOLUSDT_8h_funding.csv.gz")["funding_rate"]
    funding = np.zeros(open_.size)
    settle = np.arange(480, open_.size, 480)
    funding[settle] = np.resize(rates.to_numpy(float), settle.size)
    cost_rate = 8e-4

    reference = bare_numpy(open_, held, funding, cost_rate)
    assert np.allclose(library_core(open_, held, funding, cost_rate), reference, rtol=1e-9)

    n = open_.size
    core_s = median_seconds(lambda: library_core(open_, held, funding, cost_rate), args.repeat)
    bare_s = median_seconds(lambda: bare_numpy(open_, held, funding, cost_rate), args.repeat)
    sleeve = SleeveSpec("SOLUSDT", pd.Series(open_, index=index), target, 1.0)
    full_s = median_seconds(lambda: run_backtest([sleeve]), max(1, args.repeat // 2))
    trades = int(np.count_nonzero(np.diff(held)))
    print(f"bars: {n:,} (5 years of 1m, tiled {source.name}), position changes: {trades}")
    print(f"backtest_core + equity: {core_s * 1e3:8.1f} ms  {n / core_s / 1e6:7.1f} M bars/s")
    print(f"bare numpy + equity:    {bare_s * 1e3:8.1f} ms  {n / bare_s / 1e6:7.1f} M bars/s")
    print(f"ratio core / bare:      {core_s / bare_s:8.2f}x")
    print(
        f"run_backtest (all outputs incl. trades table): {full_s * 1e3:8.1f} ms  "
        f"{n / full_s / 1e6:7.1f} M bars/s"
    )
    if args.summary_json:
        emit(
            [
                Row("backtest core + equity vs bare numpy", core_s * 1e3, "ms", bare_s * 1e3),
                # the bare arithmetic is not a floor for the whole backtest (metrics,
                # trades table): no target is judged on this ratio
                Row("run_backtest (all outputs) vs bare equity", full_s * 1e3, "ms", bare_s * 1e3),
            ]
        )


if __name__ == "__main__":
    main()
