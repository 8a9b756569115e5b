"""Candle loading: stagectl's validated loader against a bare ``pandas.read_csv`` of the same file.

The file: 2,628,000 one-minute bars (five years), written to a temporary directory by
repeating the real SOLUSDT perp 1m rows of ``../shared/data`` (both parts, 116,341 rows)
with their values copied verbatim as text and the timestamps renumbered onto one
continuous minute grid (so the file is valid: unique, sorted). Without the shared data
the bundled hourly SOLUSDT bars are repeated the same way, and the benchmark says so.

1. the figure: ``read_candles("SOLUSDT", "1m", data_dir=...)``: find the file, parse,
   validate every value and bar, refuse duplicates, build the frame;
2. its floor, measured in the same invocation: ``pandas.read_csv`` of the same file into
   the same dtypes (float64 columns; the ISO timestamps through ``pandas.to_datetime``
   into a UTC ``datetime64[ns]`` index), with no validation;
3. the ratios (targets: time <= 1.2x, peak memory <= 1.3x).

Each load runs in a fresh Python process (``--one``), the two kinds alternated
``--repeat`` times; the figures are medians, with the range. Time is the load alone
(imports excluded), wall clock and CPU (all threads: pandas' reader parses in
parallel); memory is the process's peak resident set (``ru_maxrss``), imports and
interpreter included, so the load's own share is printed too. Both loads must give the
same frame (a checksum of index, columns, dtypes and values). Usage:

    python benchmarks/loader.py [--data-dir DIR] [--rows N] [--repeat 5] [--gzip]
    python benchmarks/loader.py --write DIR            # only write the file
    python benchmarks/loader.py --one {stagectl,floor} FILE   # one load, as its own process
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from market_data import market_data, sol_perp_bars
from summary import Row, add_option, emit

ROWS_5Y_1M = 5 * 525_600
COLUMNS = ("open", "high", "low", "close", "volume")
FILE_NAME = "binance_perp_SOLUSDT_1m_ohlcv.csv"


def _open(path: Path, mode: str) -> IO[str]:
    if path.name.endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8")


def _values(paths: list[Path]) -> Iterator[str]:
    """Each data line of the files without its timestamp, exactly as written."""
    for path in paths:
        with _open(path, "r") as handle:
            next(handle)
            yield from (line.split(",", 1)[1] for line in handle if line.strip())


def write_file(out_dir: Path, paths: list[Path], rows: int, *, gz: bool) -> Path:
    """The real rows repeated to ``rows``, on a continuous minute grid from the first time."""
    real = list(_values(paths))
    with _open(paths[0], "r") as handle:
        next(handle)
        first = np.datetime64(next(handle).split(",", 1)[0].rstrip("Z"), "m")
    stamps = np.datetime_as_string(first + np.arange(rows), unit="s")
    out = out_dir / (FILE_NAME + (".gz" if gz else ""))
    with _open(out, "w") as handle:
        handle.write("timestamp," + ",".join(COLUMNS) + "\n")
        step = 500_000
        for start in range(0, rows, step):
            chunk = range(start, min(rows, start + step))
            handle.writelines(f"{stamps[i]}Z,{real[i % len(real)]}" for i in chunk)
    return out


@dataclass
class Load:
    wall_s: float
    cpu_s: float
    peak_mib: float
    imports_mib: float
    rows: int
    checksum: str

    @property
    def own_mib(self) -> float:
        return self.peak_mib - self.imports_mib


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(kind: str, path: Path) -> None:
    """Load ``path`` once the ``kind`` way and print what it cost, as JSON (child process)."""
    import pandas as pd

    if kind == "stagectl":
        from stagectl.data import files
        from stagectl.data.loaders import read_candles

        found = files.classify(path)
        assert found is not None, path

        def load() -> pd.DataFrame:
            return read_candles(
                found.symbol, found.timeframe, data_dir=path.parent, market=found.market
            ).frame

    else:

        def load() -> pd.DataFrame:
            frame = pd.read_csv(path, dtype=dict.fromkeys(COLUMNS, np.float64))
            stamps = pd.to_datetime(frame.pop("timestamp"), format="ISO8601", utc=True)
            frame.index = pd.DatetimeIndex(stamps, name="timestamp").as_unit("ns")
            return frame

    imports = _peak_mib()
    wall, cpu = time.perf_counter(), time.process_time()
    frame = load()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = _peak_mib()
    digest = hashlib.sha256(f"{list(frame.columns)} {list(frame.dtypes)}".encode())
    digest.update(str(frame.index.dtype).encode() + str(frame.index.name).encode())
    digest.update(pd.DatetimeIndex(frame.index).asi8.tobytes())
    for column in frame.columns:
        digest.update(frame[column].to_numpy().tobytes())
    print(json.dumps(Load(wall, cpu, peak, imports, len(frame), digest.hexdigest()).__dict__))


def measure(kind: str, path: Path) -> Load:
    command = [sys.executable, __file__, "--one", kind, str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} load failed:\n{done.stderr}")
    return Load(**json.loads(done.stdout))


def spread(values: list[float], unit: str, places: int = 2) -> str:
    median = statistics.median(values)
    return f"{median:.{places}f}{unit} ({min(values):.{places}f}-{max(values):.{places}f})"


def report(path: Path, figures: list[Load], floors: list[Load]) -> list[Row]:
    """Print the figures, floors and ratios; return them as summary rows."""
    if {f.checksum for f in figures + floors} != {figures[0].checksum}:
        raise SystemExit("the loader's frame differs from the bare read's")
    size_mib = path.stat().st_size / 2**20
    print(
        f"{figures[0].rows:,} rows, {path.name} ({size_mib:.0f} MiB); the same frame both "
        f"ways; median (min-max) of {len(figures)} fresh processes each, alternated"
    )
    for label, runs in (
        ("figure (stagectl read_candles)", figures),
        ("floor (bare read_csv)", floors),
    ):
        print(
            f"  {label:31s} wall {spread([r.wall_s for r in runs], ' s')}  "
            f"CPU {spread([r.cpu_s for r in runs], ' s')}  "
            f"peak {spread([r.peak_mib for r in runs], ' MiB', 0)} "
            f"(imports {statistics.median(r.imports_mib for r in runs):.0f} MiB)"
        )
    pairs = list(zip(figures, floors, strict=True))
    for label, ratio, target in (
        ("time (wall)", lambda a, b: a.wall_s / b.wall_s, "1.2x"),
        ("time (CPU)", lambda a, b: a.cpu_s / b.cpu_s, "1.2x"),
        ("peak memory", lambda a, b: a.peak_mib / b.peak_mib, "1.3x"),
        ("memory of the load itself", lambda a, b: a.own_mib / b.own_mib, ""),
    ):
        values = [ratio(a, b) for a, b in pairs]
        print(
            f"  ratio {label:27s} {statistics.median(values):.2f}x "
            f"(pairs {min(values):.2f}-{max(values):.2f})"
            + (f", target <= {target}" if target else "")
        )
    rows = []
    for label, unit, value, target_x in (
        ("wall", "s", lambda r: r.wall_s, 1.2),
        ("CPU", "s", lambda r: r.cpu_s, 1.2),
        ("peak memory", "MiB", lambda r: r.peak_mib, 1.3),
    ):
        ratio = statistics.median(value(a) / value(b) for a, b in pairs)
        rows.append(
            Row(
                f"read_candles {figures[0].rows:,} 1m bars vs bare read_csv, {label}",
                statistics.median(value(r) for r in figures),
                unit,
                statistics.median(value(r) for r in floors),
                ratio,
                f"<= {target_x}x",
                ratio <= target_x,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--rows", type=int, default=ROWS_5Y_1M)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--gzip", action="store_true", help="write and read a .csv.gz")
    parser.add_argument("--write", type=Path, metavar="DIR", help="only write the file to DIR")
    parser.add_argument("--one", nargs=2, metavar=("KIND", "FILE"), help=argparse.SUPPRESS)
    add_option(parser)
    args = parser.parse_args()
    if args.one:
        one(args.one[0], Path(args.one[1]))
        return
    if args.write:
        paths, source = sol_perp_bars(market_data(args.data_dir))
        print(f"data: {source}")
        args.write.mkdir(parents=True, exist_ok=True)
        print(f"wrote {write_file(args.write, paths, args.rows, gz=args.gzip)}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        # written by a child: a child's ru_maxrss starts from its parent's peak (vfork, exec)
        command = [sys.executable, __file__, "--write", tmp, "--rows", str(args.rows)]
        if args.data_dir:
            command += ["--data-dir", str(args.data_dir)]
        subprocess.run([*command, *(["--gzip"] if args.gzip else [])], check=True)
        path = next(Path(tmp).iterdir())
        figures, floors = [], []
        for _ in range(args.repeat):  # alternated, so a busy spell of the machine hits both
            floors.append(measure("floor", path))
            figures.append(measure("stagectl", path))
        rows = report(path, figures, floors)
    if args.summary_json:
        emit(rows)


if __name__ == "__main__":
    main()
