"""run-live's speed: the paper replay (bars per second) and the live loop's per-bar latency
against the loopback exchange simulator through real ccxt (median, p99).

Paper: ``run-live`` in-process on the bundled data at ``--speed max`` into a fresh
temporary home (paper broker, state in SQLite, artifacts at exit). Live: ``run-live
--live`` in-process against ``tests.exchange_sim`` on 127.0.0.1 (ETHUSDT and SOLUSDT
candles, the simulator's clock moved to each bar's close as the loop waits for it), so a
bar's latency is the loop's own work: about 20 HTTP round trips through ccxt (account,
positions, klines, funding, fills, orders) plus the state writes. Usage:

    python benchmarks/live_loop.py [--days 30] [--live-bars 48] [--stop-limits]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from summary import Row, add_option, emit

from stagectl.config.home import Home
from stagectl.services.live import run as run_live

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.exchange_sim


def _timer() -> tuple[list[float], Callable[[Any, Any], None], Callable[[], None]]:
    latencies: list[float] = []
    last = [time.perf_counter()]

    def on_step(data: Any, outcome: Any) -> None:
        now = time.perf_counter()
        latencies.append(now - last[0])
        last[0] = now

    def reset() -> None:
        last[0] = time.perf_counter()

    return latencies, on_step, reset


def _stats(latencies: list[float]) -> tuple[float, float]:
    steady = sorted(latencies[1:] or latencies)
    p99 = steady[min(len(steady) - 1, int(0.99 * len(steady)))]
    return statistics.median(steady), p99


def paper(days: int, stop_limits: bool) -> Row:
    end = datetime(2026, 4, 30, 23, tzinfo=UTC)
    start = end - timedelta(days=days) + timedelta(hours=1)
    latencies, on_step, reset = _timer()
    with tempfile.TemporaryDirectory() as root:
        request = run_live.RunLiveRequest(start=start, end=end, stop_limits=stop_limits)
        began = time.perf_counter()
        reset()
        result = run_live.run(request, home=Home(root=Path(root)), on_step=on_step)
        total = time.perf_counter() - began
    median, p99 = _stats(latencies)
    print(
        f"paper: {result.bars} bars ({days} days of 1h bars), orders {result.orders_sent}, "
        f"fills {result.fills}, stop-limits {'on' if stop_limits else 'off'}"
    )
    print(f"  total (incl. data load, backtest replay, artifacts): {total:.2f} s")
    print(
        f"  replay speed: {result.bars / sum(latencies):.1f} bars/s (steps only), "
        f"{result.bars / total:.1f} bars/s overall"
    )
    print(
        f"  per-bar latency: median {median * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, "
        f"first bar {latencies[0] * 1e3:.0f} ms (includes setup)"
    )
    return Row(f"run-live paper, {days} days: median per bar", median * 1e3, "ms")


def live(bars: int) -> Row:
    from tests.exchange_sim import API_KEY, API_SECRET, running_sim

    from stagectl.data import load_candles, load_funding
    from stagectl.exchange.ccxt_broker import open_broker
    from stagectl.exchange.credentials import Credentials

    start = datetime(2026, 3, 2, tzinfo=UTC)
    symbols = ("ETHUSDT", "SOLUSDT")
    candles = {s: load_candles(s) for s in symbols}
    funding = {s: load_funding(s) for s in symbols}
    latencies, on_step, reset = _timer()
    with (
        running_sim(candles=candles, funding=funding, start=start.isoformat()) as sim,
        tempfile.TemporaryDirectory() as root,
    ):
        sim._server.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        broker = open_broker(
            "binanceusdm",
            credentials=Credentials(API_KEY, API_SECRET, "benchmark"),
            base_url=sim.base_url,
            rate_limit=False,
        )

        class SimClock:
            def now(self) -> datetime:
                return datetime.fromtimestamp(sim.engine.now_ms / 1000, tz=UTC)

            def wait_until(self, when: datetime) -> bool:
                sim.advance(ms=max(0, int((when - self.now()).total_seconds() * 1000)))
                return True

        request = run_live.RunLiveRequest(live=True, end=start + timedelta(hours=bars - 1))
        began = time.perf_counter()
        reset()
        result = run_live.run(
            request,
            home=Home(root=Path(root)),
            on_step=on_step,
            live_broker=broker,
            clock=SimClock(),
        )
        total = time.perf_counter() - began
        requests = len(sim.requests())
    median, p99 = _stats(latencies)
    print(
        f"live (ccxt -> loopback simulator): {result.bars} bars, orders {result.orders_sent}, "
        f"fills {result.fills}, {requests / result.bars:.1f} HTTP requests per bar"
    )
    print(f"  total (incl. markets and the signal history of each sleeve): {total:.2f} s")
    print(
        f"  per-bar latency: median {median * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, "
        f"first bar {latencies[0] * 1e3:.0f} ms (includes setup)"
    )
    print(f"  a live 1h bar leaves {3600 / median:.0f}x headroom (before exchange round trips)")
    return Row(f"run-live --live via ccxt, {bars} bars: median per bar", median * 1e3, "ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--live-bars", type=int, default=48)
    parser.add_argument("--stop-limits", action="store_true")
    add_option(parser)
    args = parser.parse_args()
    rows = [paper(args.days, args.stop_limits), live(args.live_bars)]
    if args.summary_json:
        emit(rows)


if __name__ == "__main__":
    main()
