"""Where the benchmarks find real market data, so that they run in any clone.

``../shared/data`` beside the repository root holds the full real data (1m candles,
trades); a clone without it falls back to the sample bundled in the package (hourly
candles and funding only). Each benchmark prints which one it used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stagectl.data import files
from stagectl.data.bundled import SAMPLE_DIR

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@dataclass(frozen=True)
class MarketData:
    """A directory of real market data and what it is."""

    path: Path
    bundled: bool

    def describe(self) -> str:
        kind = "the bundled sample" if self.bundled else "real data"
        return f"{kind} in {self.path}"

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()


def market_data(explicit: Path | None = None) -> MarketData:
    """``explicit`` when given, else ``../shared/data`` when present, else the bundled sample."""
    if explicit is not None:
        return MarketData(explicit, bundled=explicit.resolve() == SAMPLE_DIR)
    if SHARED_DATA.is_dir():
        return MarketData(SHARED_DATA, bundled=False)
    return MarketData(SAMPLE_DIR, bundled=True)


def sol_perp_bars(data: MarketData) -> tuple[list[Path], str]:
    """The real SOLUSDT perp 1m files, or the hourly ones where there are no 1m files."""
    for timeframe in ("1m", "1h"):
        paths = [
            f.path
            for f in files.scan(data.path)
            if f.key == ("SOLUSDT", "perp", "ohlcv", timeframe)
        ]
        if paths:
            names = ", ".join(p.name for p in paths)
            return paths, f"SOLUSDT perp {timeframe} bars ({names}) from {data.describe()}"
    raise SystemExit(f"no SOLUSDT perp 1m or 1h candles in {data.path}")
