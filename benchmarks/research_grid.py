"""A backtest grid on a 2-worker local Dask cluster against the serial run (issue 15).

Data: ETHUSDT and SOLUSDT 1m candles, ``--bars`` each (default 262,800: half a year),
written to a temporary directory by tiling the bundled hourly rows (values verbatim)
onto a continuous minute grid; the strategy is the packaged config at timeframe 1m with
funding off (the tiled bars have no funding). The grid: ``lookback_scale`` 0.5/1/2 x
``debounce_bars`` 1/2/4 = 9 configurations x 2 symbols x 1 period = 18 cells, each a
backtest of the whole series.

1. the floor: ``research.grid.run`` serially, in this process;
2. the figure: the same on a LocalCluster of 2 processes already running (what a
   ``--scheduler`` user pays: scatter of the frames, the tasks, the gather);
3. cold: ``--workers 2`` as the CLI runs it, the cluster's start and close included;
4. CPU: this process's CPU time (serial; client and scheduler) and each worker's. On a
   machine shared with other work the wall-clock ratio measures the share this run got
   (Linux groups a session's processes: more processes do not get more of the CPU), so
   the CPU row gives the speed-up the same work reaches on 2 idle cores.

The rows must be equal (``==``) on every path, or the benchmark exits 1. Figures are
medians of ``--repeat`` runs. Target: the warm cluster at most 0.67x the serial time
(a 1.5x speed-up on 2 cores); on a machine shared with other work the ratio says so.

Run: ``python benchmarks/research_grid.py [--bars N] [--repeat N] [--summary-json]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import distributed
import numpy as np
from summary import Row, add_option, emit

from stagectl.config.home import Home
from stagectl.data.bundled import SAMPLE_DIR
from stagectl.services.research import grid
from stagectl.services.research.parallel import Parallelism, start_local_cluster

REPO = Path(__file__).resolve().parents[1]
SYMBOLS = ("ETHUSDT", "SOLUSDT")
GRID = """\
parameters:
  lookback_scale: [0.5, 1, 2]
  debounce_bars: [1, 2, 4]
symbols: [ETHUSDT, SOLUSDT]
"""


def write_minutes(out_dir: Path, symbol: str, rows: int) -> None:
    """The bundled hourly rows of ``symbol`` tiled onto ``rows`` continuous minutes."""
    import gzip

    source = SAMPLE_DIR / f"binance_perp_{symbol}_1h_ohlcv.csv.gz"
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        next(handle)
        real = [line.split(",", 1)[1] for line in handle if line.strip()]
    stamps = np.datetime_as_string(np.datetime64("2020-01-01T00:00") + np.arange(rows), "s")
    with (out_dir / f"binance_perp_{symbol}_1m_ohlcv.csv").open("w") as handle:
        handle.write("timestamp,open,high,low,close,volume\n")
        handle.writelines(f"{stamps[i]}Z,{real[i % len(real)]}" for i in range(rows))


def write_config(path: Path) -> None:
    text = (REPO / "config" / "futures_alt_ensemble.yaml").read_text()
    text = text.replace("timeframe: 1h", "timeframe: 1m", 1)
    text = text.replace("funding_enabled: true", "funding_enabled: false", 1)
    path.write_text(text)


@dataclass
class Timing:
    wall_s: float
    cpu_s: float
    """CPU of this process (the serial run; the client and the in-process scheduler)."""
    rows: list[grid.GridRow]


def timed(action: Callable[[], list[grid.GridRow]], repeat: int) -> Timing:
    """Medians of wall and CPU time over ``repeat`` runs, and the last run's rows."""
    walls, cpus, rows = [], [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        rows = action()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return Timing(statistics.median(walls), statistics.median(cpus), rows)


def _cpu(dask_worker: object) -> float:
    return time.process_time()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=262_800, help="1m bars per symbol")
    parser.add_argument("--repeat", type=int, default=3)
    add_option(parser)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stagectl-grid-"))
    data = work / "data"
    data.mkdir()
    for symbol in SYMBOLS:
        write_minutes(data, symbol, args.bars)
    config = work / "strategy_1m.yaml"
    write_config(config)
    (work / "grid.yaml").write_text(GRID)
    home = Home.resolve(work)
    request = grid.GridRequest(grid=work / "grid.yaml", config=config, data_dir=data)
    print(f"grid: 9 configurations x 2 symbols = 18 cells, {args.bars:,} 1m bars per symbol")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")

    def serial() -> list[grid.GridRow]:
        return grid.run(request, home=home).rows

    base = timed(serial, args.repeat)
    serial_s, expected = base.wall_s, base.rows
    print(f"serial: median {serial_s:.2f} s wall, {base.cpu_s:.2f} s CPU over {args.repeat} runs")
    cluster = start_local_cluster(2)
    on_cluster = replace(request, parallelism=Parallelism(scheduler=cluster.scheduler_address))
    try:
        grid.run(on_cluster, home=home)  # the workers import stagectl once, not timed
        with distributed.Client(cluster) as client:
            before = client.run(_cpu)
            warm = timed(lambda: grid.run(on_cluster, home=home).rows, args.repeat)
            after = client.run(_cpu)
    finally:
        cluster.close()
    warm_s = warm.wall_s
    workers_cpu = [(after[w] - before[w]) / args.repeat for w in after]
    print(
        f"2 workers, warm cluster: median {warm_s:.2f} s wall ({serial_s / warm_s:.2f}x "
        f"speed-up); CPU per run: workers {' + '.join(f'{c:.2f}' for c in workers_cpu)} s, "
        f"client and scheduler {warm.cpu_s:.2f} s"
    )
    bound = base.cpu_s / (max(workers_cpu) + warm.cpu_s)
    print(
        f"CPU-bound speed-up on 2 idle cores (serial CPU / (busiest worker + client)): "
        f"{bound:.2f}x; the wall-clock ratio above also measures this machine's other load"
    )
    cold = replace(request, parallelism=Parallelism(workers=2))
    cold_run = timed(lambda: grid.run(cold, home=home).rows, 1)
    cold_s = cold_run.wall_s
    print(f"--workers 2, cluster start and close included: {cold_s:.2f} s")
    equal = warm.rows == expected and cold_run.rows == expected
    print(f"rows equal to the serial rows: {'yes' if equal else 'NO'} ({len(expected)} rows)")
    if args.summary_json:
        emit(
            [
                Row(
                    "grid 9 configs x 2 symbols, 2 warm Dask workers vs serial",
                    warm_s,
                    "s",
                    serial_s,
                    warm_s / serial_s,
                    "<= 0.67x (1.5x speed-up), equal rows",
                    equal and warm_s / serial_s <= 0.67,
                ),
                Row(
                    "grid on 2 workers, CPU: (busiest worker + client) vs serial",
                    max(workers_cpu) + warm.cpu_s,
                    "s",
                    base.cpu_s,
                    (max(workers_cpu) + warm.cpu_s) / base.cpu_s,
                    "<= 0.67x",
                    (max(workers_cpu) + warm.cpu_s) / base.cpu_s <= 0.67,
                ),
                Row(
                    "grid, --workers 2 incl. cluster start vs serial",
                    cold_s,
                    "s",
                    serial_s,
                    cold_s / serial_s,
                ),
            ]
        )
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
