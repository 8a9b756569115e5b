"""FIFO realized PnL over 1 M fills: stagectl's exact integer kernel vs Decimal and float loops.

Run: python benchmarks/ledger_fifo.py [--fills 1000000] [--data DIR]
Prints medians of a few runs; not part of the test suite. The real ETHUSDT trades come
from ``../shared/data``; without it (the bundled sample has no trades) only the
synthetic fills are run, and the benchmark says so.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from market_data import market_data
from summary import Row, add_option, emit

from stagectl.domain.ledger import fifo_kernel, fifo_realized
from stagectl.domain.types import Fill

TRADES = "binance_perp_ETHUSDT_trades_2023-02-02.csv.gz"


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    runs, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs) * 1000, result


def fifo_loop(deltas: list[Any], prices: list[Any], zero: Any) -> list[Any]:
    """The textbook loop: a deque of [qty, price] lots (signed qty), one fill at a time."""
    lots: deque[list[Any]] = deque()
    out = []
    for delta, price in zip(deltas, prices, strict=True):
        realized = zero
        while delta and lots and (lots[0][0] > 0) != (delta > 0):
            lot = lots[0]
            take = min(abs(delta), abs(lot[0]))
            sign = 1 if lot[0] > 0 else -1
            realized += sign * take * (price - lot[1])
            lot[0] -= sign * take
            delta += sign * take
            if not lot[0]:
                lots.popleft()
        if delta:
            lots.append([delta, price])
        out.append(realized)
    return out


def synthetic(n: int, seed: int = 7) -> tuple[list[int], list[int]]:
    """Fills of a market maker: 3-decimal sizes, a 3-decimal SOL-like price random walk."""
    rng = np.random.default_rng(seed)
    price = np.round(25_000 + np.cumsum(rng.integers(-3, 4, n)), 0).astype(np.int64)
    qty = rng.integers(1, 1000, n)
    side = np.where(rng.random(n) < 0.5, 1, -1)
    return (side * qty).tolist(), price.tolist()


def real_trades(path: Path) -> tuple[list[int], list[int]]:
    deltas, prices = [], []
    with gzip.open(path, "rt") as fh:
        next(fh)
        for line in fh:
            _, _, price, amount, side = line.strip().split(",")
            deltas.append(int(Decimal(amount) * 1000) * (1 if side == "buy" else -1))
            prices.append(int(Decimal(price) * 100))
    return deltas, prices


def as_fills(
    deltas: list[int], prices: list[int], qty_places: int, price_places: int
) -> list[Fill]:
    ts = datetime(2023, 2, 2, tzinfo=UTC)
    return [
        Fill(
            str(i),
            ts,
            "SOLUSDT",
            "buy" if d > 0 else "sell",
            Decimal(abs(d)).scaleb(-qty_places),
            Decimal(p).scaleb(-price_places),
        )
        for i, (d, p) in enumerate(zip(deltas, prices, strict=True))
    ]


def compare(label: str, deltas: list[int], prices: list[int], qp: int, pp: int, n: int) -> Row:
    """Print the timings; the summary row is fifo_realized against the plain float loop."""
    reps = -(-n // len(deltas))
    mirrored = [-d for d in deltas]  # alternate blocks trade the other way: inventory stays bounded
    deltas = [d for k in range(reps) for d in (deltas if k % 2 == 0 else mirrored)][:n]
    prices = (prices * reps)[:n]
    fills = as_fills(deltas, prices, qp, pp)
    dec_d = [f.book_delta for f in fills]
    dec_p = [f.price for f in fills]
    flt_d = [float(d) for d in dec_d]
    flt_p = [float(p) for p in dec_p]
    i64_d, i64_p = np.array(deltas, dtype=np.int64), np.array(prices, dtype=np.int64)
    f64_d, f64_p = i64_d / 10**qp, i64_p / 10**pp
    t_kernel, kern = timed(lambda: fifo_kernel(i64_d, i64_p))
    t_full, full = timed(lambda: fifo_realized(fills))
    t_float, flt = timed(lambda: fifo_loop(flt_d, flt_p, 0.0))
    t_dec, dec = timed(lambda: fifo_loop(dec_d, dec_p, Decimal(0)), repeat=1)
    try:
        t_np, npf = timed(lambda: fifo_kernel(f64_d, f64_p))
        float_kernel = f"{t_np:8.1f} ms  max |err| {_max_error(npf, dec, qp + pp):.2e}"
    except IndexError:
        # The kernel is written for integer units: rounded float sums can overshoot the
        # last opened lot, which is why the ledger never runs it on floats.
        float_kernel = f"{'n/a':>8}     fails: rounded float sums overshoot the open lots"
    exact = all(a == b for a, b in zip(full.realized_pnl(), dec, strict=True))
    total = sum(dec, Decimal(0))
    print(f"{label}: {n} fills")
    print(f"  int64 kernel (exact)          {t_kernel:8.1f} ms")
    print(f"  fifo_realized(list[Fill])     {t_full:8.1f} ms  exact vs Decimal: {exact}")
    print(f"  same kernel on float64        {float_kernel}")
    print(
        f"  float loop                    {t_float:8.1f} ms  total err "
        f"{abs(Decimal(sum(flt)) - total):.2e}"
    )
    print(f"  Decimal loop                  {t_dec:8.1f} ms  total {total}")
    del kern
    return Row(f"FIFO PnL, {n:,} {label} fills: fifo_realized vs float loop", t_full, "ms", t_float)


def _max_error(result: Any, exact: list[Decimal], places: int) -> Decimal:
    as_float = result.realized_gross / 10**places
    return max(abs(Decimal(float(a)) - b) for a, b in zip(as_float, exact, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=None)
    add_option(parser)
    args = parser.parse_args()
    data = market_data(args.data)
    rows = [compare("synthetic SOL-like", *synthetic(args.fills), 3, 3, args.fills)]
    if data.has(TRADES):
        print(f"data: {TRADES} from {data.describe()}")
        deltas, prices = real_trades(data.path / TRADES)
        compare("real ETHUSDT trades", deltas, prices, 3, 2, len(deltas))
        rows.append(compare("real ETHUSDT trades tiled", deltas, prices, 3, 2, args.fills))
    else:
        print(f"data: no {TRADES} in {data.describe()}: the real-trade runs are skipped")
    if args.summary_json:
        emit(rows)


if __name__ == "__main__":
    main()
