"""Rebuild the bundled market-data sample from ../shared/data, deterministically.

Usage: python scripts/build_sample_data.py [--source DIR] [--out DIR]

Each sample file keeps the source's header and its data lines *verbatim* (the
same bytes, ISO-8601 UTC timestamps) for every row whose timestamp is on or
after 2024-01-01T00:00:00Z, to the end of the source file; it is written with
gzip level 9 and a zero mtime so the same input always gives the same bytes.
MANIFEST.json describes each file (symbol, market, kind, timeframe, first,
last, rows, gaps, sha256 of the .gz file and of the CSV text, source file).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "src" / "stagectl" / "data" / "sample"
START = "2024-01-01T00:00:00Z"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
# (market, kind, timeframe): the datasets bundled for every symbol
DATASETS = (("perp", "ohlcv", "1h"), ("perp", "funding", "8h"), ("spot", "ohlcv", "1h"))
# (symbol, market, kind, timeframe): datasets the shared data holds for some symbols only
# (perp mark prices, for the mark-vs-last cross-check of `stagectl data check`)
EXTRA_DATASETS = (("ETHUSDT", "perp", "mark", "1h"), ("SOLUSDT", "perp", "mark", "1h"))
TIMEFRAME_SECONDS = {"1h": 3600, "8h": 8 * 3600}


def _parse(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _gaps(timestamps: list[str], step_s: int) -> tuple[int, int]:
    """(number of holes, number of missing bars) against the nominal step."""
    holes = missing = 0
    step = timedelta(seconds=step_s)
    for before, after in pairwise(timestamps):
        delta = _parse(after) - _parse(before)
        if delta > step:
            holes += 1
            missing += int(delta / step) - 1
    return holes, missing


def build_one(
    source: Path, out_dir: Path, symbol: str, market: str, kind: str, tf: str
) -> dict[str, Any]:
    name = f"binance_{market}_{symbol}_{tf}_{kind}.csv.gz"
    lines = gzip.decompress((source / name).read_bytes()).decode("utf-8").splitlines()
    header, body = lines[0], lines[1:]
    start = _parse(START)
    kept = [line for line in body if _parse(line.split(",", 1)[0]) >= start]
    if not kept:
        raise SystemExit(f"{name}: no rows on or after {START}")
    text = "\n".join([header, *kept]) + "\n"
    data = gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)
    (out_dir / name).write_bytes(data)
    timestamps = [line.split(",", 1)[0] for line in kept]
    holes, missing = _gaps(timestamps, TIMEFRAME_SECONDS[tf])
    return {
        "file": name,
        "symbol": symbol,
        "market": market,
        "kind": kind,
        "timeframe": tf,
        "first": timestamps[0],
        "last": timestamps[-1],
        "rows": len(kept),
        "gaps": holes,
        "missing_bars": missing,
        "sha256": hashlib.sha256(data).hexdigest(),
        "csv_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "source": name,
    }


def build(source: Path, out_dir: Path) -> list[dict[str, Any]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = [
        build_one(source, out_dir, symbol, market, kind, tf)
        for market, kind, tf in DATASETS
        for symbol in SYMBOLS
    ]
    entries += [
        build_one(source, out_dir, symbol, market, kind, tf)
        for symbol, market, kind, tf in EXTRA_DATASETS
    ]
    manifest = {
        "schema": "stagectl.sample-data/v1",
        "start": START,
        "provenance": "Binance market data from ../shared/data (see docs/data.md); "
        "rows copied verbatim from the source files.",
        "datasets": entries,
    }
    (out_dir / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    entries = build(args.source, args.out)
    total = sum((args.out / e["file"]).stat().st_size for e in entries)
    for e in entries:
        print(f"{e['file']}: {e['rows']} rows {e['first']} .. {e['last']} gaps={e['gaps']}")
    print(f"{len(entries)} files, {total} bytes in {args.out}")


if __name__ == "__main__":
    main()
