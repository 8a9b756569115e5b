"""The whole in-process backtest against a bare numpy/pandas script doing the same work.

Issue 13, item 2: on 2,628,000 one-minute bars (five years of SOLUSDT perp 1m data tiled
as in ``backtest_core.py``; the bundled hourly bars without ``../shared/data``, and the
benchmark says so), stagectl's backtest in process (what ``services.research.backtest``
runs once the candles are loaded: the sleeve's signal, ``run_backtest`` with its costs,
funding and trades table, ``cost_summary`` and ``performance.summarize``) is timed
against its floor measured in the same run: a bare script computing the same signal,
simulation, costs, funding and the same metrics with numpy and pandas' EWM, written as
one would without the library. Both are called alternately, warm (after one call each);
the figure and floor are the medians. Before timing, the floor's metrics are checked
against stagectl's to 1e-12 (relative above 1).

Run: ``python benchmarks/backtest_e2e.py [--data-dir DIR] [--repeat N] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import math
import pstats
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from backtest_core import BARS_5Y_1M, SOL_1H, SOL_1M
from market_data import market_data
from summary import Row, add_option, emit

from stagectl.domain.backtest import SleeveSpec, run_backtest
from stagectl.domain.performance import summarize
from stagectl.domain.strategies import debounce, tsmom_ema
from stagectl.services.strategy.costs import cost_summary

LOOKBACK = 1440
DEBOUNCE = 2
FEE_BPS, SLIPPAGE_BPS = 5.0, 3.0
INITIAL_EQUITY = 100_000.0
FUNDING_EVERY = 480  # bars between settlements: 8 h of 1m bars
TARGET_RATIO = 2.0


@dataclass(frozen=True)
class Bars:
    """One sleeve's tiled market: opens, closes, volumes, funding settlements."""

    index: pd.DatetimeIndex
    open: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    funding: pd.Series
    bar: str


def tiled_bars(data_dir: Path | None, bars: int) -> tuple[Bars, str]:
    """The real SOLUSDT bars tiled to ``bars`` rows, each tile scaled to join the previous."""
    data = market_data(data_dir)
    source = data.path / (SOL_1M if data.has(SOL_1M) else SOL_1H)
    bar = "1m" if source.name == SOL_1M else "1h"
    frame = pd.read_csv(source)
    opens, closes = frame["open"].to_numpy(float), frame["close"].to_numpy(float)
    tiles = -(-bars // opens.size)
    scales = (closes[-1] / opens[0]) ** np.arange(tiles)

    def tile(values: np.ndarray, scaled: bool) -> np.ndarray:
        factor = scales[:, None] if scaled else np.ones((tiles, 1))
        return (values[None, :] * factor).ravel()[:bars]

    index = pd.date_range("2020-01-01", periods=bars, freq=bar.replace("m", "min"), tz="UTC")
    rates = pd.read_csv(data.path / "binance_perp_SOLUSDT_8h_funding.csv.gz")["funding_rate"]
    settle = index[FUNDING_EVERY::FUNDING_EVERY]
    funding = pd.Series(np.resize(rates.to_numpy(float), settle.size), index=settle)
    tiled = Bars(
        index,
        tile(opens, True),
        tile(closes, True),
        tile(frame["volume"].to_numpy(float), False),
        funding,
        bar,
    )
    return tiled, f"{bars:,} {bar} bars, tiled {source.name} from {data.describe()}"


def stagectl_backtest(bars: Bars) -> dict[str, Any]:
    """What the backtest service runs after loading: signal, backtest, cost summary, metrics."""
    close = pd.Series(bars.close, index=bars.index)
    target = debounce(tsmom_ema(close, LOOKBACK), DEBOUNCE)
    opens = pd.Series(bars.open, index=bars.index)
    sleeve = SleeveSpec("SOLUSDT", opens, target, 1.0, bars.funding)
    result = run_backtest(
        [sleeve], fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS, initial_equity=INITIAL_EQUITY
    )
    costs = cost_summary(result, 1.0)
    volume = pd.DataFrame({"SOLUSDT": bars.volume * bars.close}, index=bars.index)
    metrics = summarize(result, bars.bar, volume)
    metrics["cost_model"] = costs
    return metrics


def _sharpe(r: np.ndarray, ppy: float) -> float:
    return float(r.mean() / r.std(ddof=1) * math.sqrt(ppy))


def _max_drawdown(equity: np.ndarray, initial: float) -> float:
    peak = np.maximum(np.maximum.accumulate(equity), initial)
    return float(-(equity / peak - 1.0).min())


def bare_backtest(bars: Bars) -> dict[str, Any]:
    """The same work as ``stagectl_backtest``, inline, with no validation or frames."""
    n = bars.open.size
    ppy = 525_600.0 if bars.bar == "1m" else 8760.0
    bar_min = 525_600.0 / ppy
    # signal: sign of the EWMA of log returns, flat in warm-up, debounced, held a bar later
    log_returns = np.empty(n)
    log_returns[0] = np.nan
    log_returns[1:] = np.diff(np.log(bars.close))
    ema = pd.Series(log_returns).ewm(span=LOOKBACK, adjust=False).mean().to_numpy()
    raw = np.sign(np.nan_to_num(ema))
    raw[:LOOKBACK] = 0.0
    bar = np.arange(n)
    change = np.ones(n, dtype=bool)
    change[1:] = raw[1:] != raw[:-1]
    run_length = bar - np.maximum.accumulate(np.where(change, bar, 0)) + 1
    confirmed = run_length >= DEBOUNCE
    last = np.maximum.accumulate(np.where(confirmed, bar, -1))
    target = np.where(last >= 0, raw[np.maximum(last, 0)], 0.0)
    held = np.zeros(n)
    held[1:] = target[:-1]
    # funding into bars, then the per-bar arithmetic
    rate = np.zeros(n)
    settle = np.searchsorted(bars.index.asi8, bars.funding.index.asi8)
    inside = (settle >= 1) & (settle < n)
    rate += np.bincount(settle[inside], bars.funding.to_numpy()[inside], minlength=n)
    prev = np.zeros(n)
    prev[1:] = held[:-1]
    move = np.zeros(n)
    move[1:] = bars.open[1:] / bars.open[:-1] - 1.0
    gross, funding, turnover = prev * move, prev * rate, np.abs(held - prev)
    fee_rate, slip_rate = FEE_BPS / 1e4, SLIPPAGE_BPS / 1e4
    cost = turnover * (fee_rate + slip_rate)
    net = (1.0 + gross - funding) * (1.0 - cost) - 1.0
    equity = INITIAL_EQUITY * np.cumprod(1.0 + net)
    before = np.empty(n)
    before[0] = INITIAL_EQUITY
    before[1:] = equity[:-1]
    gross_cur, funding_cur = before * gross, before * funding
    cost_cur = before * (1.0 + gross - funding) * cost
    fee_cur = cost_cur * (fee_rate / (fee_rate + slip_rate))
    slip_cur = cost_cur - fee_cur
    # drawdown episodes
    peak = np.maximum(np.maximum.accumulate(equity), INITIAL_EQUITY)
    drawdown = equity / peak - 1.0
    under = drawdown < 0
    starts = np.flatnonzero(under & ~np.r_[False, under[:-1]])
    ends = np.flatnonzero(under & ~np.r_[under[1:], False])
    depth = np.minimum.reduceat(drawdown, starts)
    recovered = ends < n - 1
    lengths = np.where(recovered, ends + 2 - starts, n - starts)
    # trades: runs of one non-zero sign; a flip's cost split by |held| before and after
    sign = np.sign(held)
    prev_sign = np.r_[0.0, sign[:-1]]
    first = (sign != 0) & (sign != prev_sign)
    flip = sign != prev_sign
    safe = np.where(turnover > 0, turnover, 1.0)
    entry_share = np.where(flip, np.abs(held) / safe, 1.0)
    exit_share = np.where(flip, np.abs(prev) / safe, 0.0)
    cost_t = (fee_cur + slip_cur) * entry_share
    cost_t[:-1] += ((fee_cur + slip_cur) * exit_share)[1:]
    pnl_bar = np.r_[gross_cur[1:] - funding_cur[1:], 0.0] - cost_t
    entry = np.flatnonzero(first)
    pnl = np.add.reduceat(pnl_bar, entry)
    exits = np.flatnonzero((sign != 0) & (np.r_[sign[1:], 0.0] != sign)) + 1
    closed = exits < n
    closed_pnl = pnl[closed]
    wins, losses = closed_pnl[closed_pnl > 0], closed_pnl[closed_pnl < 0]
    # per calendar year
    years = bars.index.year
    cuts = np.flatnonzero(np.r_[True, years[1:] != years[:-1]])
    by_year = {}
    for a, b in zip(cuts, np.r_[cuts[1:], n], strict=True):
        r = net[a:b]
        growth = np.cumprod(1.0 + r)
        by_year[str(years[a])] = (growth[-1] - 1.0, _sharpe(r, ppy), _max_drawdown(growth, 1.0))
    # capacity and the cost summary
    dollar_volume = bars.volume * bars.close
    fills = turnover > 0
    usable = fills & (dollar_volume > 0)
    impact = float(np.sum(turnover[usable] ** 1.5 / np.sqrt(dollar_volume[usable])))
    edge = float(net.sum())
    notional = (before + gross_cur - funding_cur) * turnover
    days = n * bar_min / 1440.0
    growth_total = equity[-1] / INITIAL_EQUITY
    downside = math.sqrt(float(np.mean(np.minimum(net, 0.0) ** 2)))
    return {
        "final_equity": float(equity[-1]),
        "total_return": float(growth_total - 1.0),
        "cagr": float(growth_total ** (ppy / n) - 1.0),
        "sharpe_net": _sharpe(net, ppy),
        "sharpe_gross": _sharpe(gross, ppy),
        "sortino": float(net.mean() / downside * math.sqrt(ppy)),
        "max_drawdown": float(-drawdown.min()),
        "avg_drawdown": float(-depth.mean()),
        "drawdown_episodes": int(starts.size),
        "longest_recovery_bars": int(lengths[recovered].max()),
        "trades": int(entry.size),
        "closed_trades": int(closed.sum()),
        "hit_rate": wins.size / closed_pnl.size,
        "avg_win": float(wins.mean()),
        "avg_loss": float(losses.mean()),
        "profit_factor": float(wins.sum() / -losses.sum()),
        "avg_holding_bars": float((exits - entry)[closed].mean()),
        "turnover_per_day": float(turnover.sum() / days),
        "gross_pnl": float(gross_cur.sum()),
        "fee": float(fee_cur.sum()),
        "slippage": float(slip_cur.sum()),
        "funding": float(funding_cur.sum()),
        "by_year": by_year,
        "capacity_equity": (edge / (2.0 * 5e-4 * impact)) ** 2 if edge > 0 else 0.0,
        "executions": int(fills.sum()),
        "traded_notional": float(notional.sum()),
        "avg_fee_bps": float(fee_cur.sum()) / float(notional.sum()) * 1e4,
    }


def comparable(metrics: dict[str, Any]) -> dict[str, Any]:
    """stagectl's report metrics in the bare script's shape (for the equality check)."""
    flat = {k: metrics[k] for k in bare_keys() if k in metrics}
    flat["by_year"] = {
        year: (row["total_return"], row["sharpe"], row["max_drawdown"])
        for year, row in metrics["stability"]["by_year"].items()
    }
    flat["capacity_equity"] = metrics["capacity"]["capacity_equity"]
    for key in ("executions", "traded_notional", "avg_fee_bps"):
        flat[key] = metrics["cost_model"][key]
    return flat


def bare_keys() -> list[str]:
    return [
        "final_equity", "total_return", "cagr", "sharpe_net", "sharpe_gross", "sortino",
        "max_drawdown", "avg_drawdown", "drawdown_episodes", "longest_recovery_bars", "trades",
        "closed_trades", "hit_rate", "avg_win", "avg_loss", "profit_factor", "avg_holding_bars",
        "turnover_per_day", "gross_pnl", "fee", "slippage", "funding",
    ]  # fmt: skip


def largest_difference(ours: dict[str, Any], floor: dict[str, Any]) -> tuple[float, str]:
    """The largest relative difference (absolute below 1) between the two, and where."""
    worst, where = 0.0, ""

    def values(d: dict[str, Any]) -> dict[str, float]:
        out = {}
        for key, value in d.items():
            if isinstance(value, dict):
                out |= {f"{key}.{k}": v for k, v in values(value).items()}
            elif isinstance(value, tuple):
                out |= {f"{key}[{i}]": float(v) for i, v in enumerate(value)}
            else:
                out[key] = float(value)
        return out

    mine, theirs = values(ours), values(floor)
    if mine.keys() != theirs.keys():
        raise SystemExit(f"metrics differ in keys: {sorted(mine.keys() ^ theirs.keys())}")
    for key, value in mine.items():
        difference = abs(value - theirs[key]) / max(1.0, abs(theirs[key]))
        if difference > worst:
            worst, where = difference, key
    return worst, where


def alternate(
    calls: dict[str, Callable[[], object]], repeat: int
) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds per call, the calls interleaved so that both see the
    same machine load (CPU time moves less with the load of a shared machine)."""
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            call()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {n: (statistics.median(wall[n]), statistics.median(cpu[n])) for n in calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--bars", type=int, default=BARS_5Y_1M)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile one stagectl call")
    add_option(parser)
    args = parser.parse_args()

    bars, described = tiled_bars(args.data_dir, args.bars)
    print(f"data: {described}")
    ours, floor = stagectl_backtest(bars), bare_backtest(bars)
    worst, where = largest_difference(comparable(ours), floor)
    print(f"same metrics: largest relative difference {worst:.1e} ({where or 'none'})")
    if worst > 1e-12:
        raise SystemExit("the bare script and stagectl disagree beyond 1e-12")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(stagectl_backtest, bars)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
    times = alternate(
        {"stagectl": lambda: stagectl_backtest(bars), "bare": lambda: bare_backtest(bars)},
        args.repeat,
    )
    (ours_s, ours_cpu), (bare_s, bare_cpu) = times["stagectl"], times["bare"]
    ratio, cpu_ratio = ours_s / bare_s, ours_cpu / bare_cpu
    print(f"trades: {ours['trades']:,}, position changes: {ours['cost_model']['executions']:,}")
    print(f"stagectl backtest end to end (warm): {ours_s * 1e3:8.1f} ms (CPU {ours_cpu * 1e3:.1f})")
    print(f"bare numpy/pandas, same work:        {bare_s * 1e3:8.1f} ms (CPU {bare_cpu * 1e3:.1f})")
    print(
        f"ratio:                               {ratio:8.2f}x (CPU {cpu_ratio:.2f}x; "
        f"target <= {TARGET_RATIO:g}x)"
    )
    if args.summary_json:
        emit(
            [
                Row(
                    f"backtest end to end, {bars.open.size:,} {bars.bar} bars vs bare numpy "
                    f"(wall; CPU {cpu_ratio:.2f}x)",
                    ours_s * 1e3,
                    "ms",
                    bare_s * 1e3,
                    ratio,
                    f"<= {TARGET_RATIO:g}x",
                    ratio <= TARGET_RATIO,
                )
            ]
        )


if __name__ == "__main__":
    main()
