"""Which file in a data directory holds which dataset (stdlib only).

Two naming styles are accepted (docs/data.md):

- the shared-data style ``<exchange>_<market>_<SYMBOL>_<tf>_<kind>[_<part>].csv[.gz]``,
  e.g. ``binance_perp_ETHUSDT_1h_ohlcv.csv.gz``, ``binance_perp_ETHUSDT_8h_funding.csv.gz``,
  ``binance_perp_SOLUSDT_1m_ohlcv_2025-05.csv.gz`` (several parts of one dataset are
  read together);
- simple names: ``ETHUSDT_1h.csv`` (perp candles), ``ETHUSDT_spot_1h.csv`` (spot
  candles), ``ETHUSDT_funding.csv`` (8h perp funding), ``ETHUSDT_mark_1h.csv`` (perp
  mark prices); ``.csv.gz`` works too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stagectl.errors import InputError

_SHARED = re.compile(
    r"^(?P<exchange>[a-z0-9]+)_(?P<market>perp|spot)_(?P<symbol>[A-Z0-9]+)_"
    r"(?P<timeframe>\d+[mhdw])_(?P<kind>ohlcv|funding|mark)(?:_[A-Za-z0-9-]+)?\.csv(?:\.gz)?$"
)
_SIMPLE_CANDLES = re.compile(
    r"^(?P<symbol>[A-Za-z0-9]+?)(?:_(?P<market>perp|spot))?_(?P<timeframe>\d+[mhdw])"
    r"\.csv(?:\.gz)?$"
)
_SIMPLE_FUNDING = re.compile(r"^(?P<symbol>[A-Za-z0-9]+)_funding\.csv(?:\.gz)?$")
_SIMPLE_MARK = re.compile(r"^(?P<symbol>[A-Za-z0-9]+)_mark_(?P<timeframe>\d+[mhdw])\.csv(?:\.gz)?$")
FUNDING_TIMEFRAME = "8h"
MARKETS = ("perp", "spot")


@dataclass(frozen=True)
class DataFile:
    """One CSV file and the dataset it belongs to."""

    path: Path
    symbol: str
    market: str
    kind: str
    timeframe: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.symbol, self.market, self.kind, self.timeframe)


def normalize_symbol(symbol: str) -> str:
    """``ETH/USDT``, ``eth/usdt:usdt`` and ``ETHUSDT`` all name ``ETHUSDT``."""
    cleaned = symbol.split(":", 1)[0].replace("/", "").replace("-", "").strip().upper()
    if not cleaned.isalnum():
        raise InputError(f"not a symbol: {symbol!r} (use an exchange id such as ETHUSDT)")
    return cleaned


def classify(path: Path) -> DataFile | None:
    """The dataset a file name belongs to, or None when the name is not ours."""
    name = path.name
    if match := _SHARED.match(name):
        return DataFile(path, match["symbol"], match["market"], match["kind"], match["timeframe"])
    if match := _SIMPLE_FUNDING.match(name):
        return DataFile(path, match["symbol"].upper(), "perp", "funding", FUNDING_TIMEFRAME)
    if match := _SIMPLE_MARK.match(name):
        return DataFile(path, match["symbol"].upper(), "perp", "mark", match["timeframe"])
    if match := _SIMPLE_CANDLES.match(name):
        market = match["market"] or "perp"
        return DataFile(path, match["symbol"].upper(), market, "ohlcv", match["timeframe"])
    return None


def scan(data_dir: Path) -> list[DataFile]:
    """Every recognised data file in ``data_dir``, sorted by file name."""
    if not data_dir.is_dir():
        raise InputError(
            "not a directory (--data takes a directory of CSV files)", where=str(data_dir)
        )
    found = (classify(path) for path in sorted(data_dir.iterdir()) if path.is_file())
    return [f for f in found if f is not None]


def find(data_dir: Path, symbol: str, *, kind: str, market: str, timeframe: str) -> list[Path]:
    """The files of one dataset; InputError naming the symbol and the patterns tried."""
    if market not in MARKETS:
        raise InputError(f"unknown market {market!r}: use perp or spot", where="market")
    key = (symbol, market, kind, timeframe)
    paths = [f.path for f in scan(data_dir) if f.key == key]
    if not paths:
        raise InputError(
            f"no {market} {timeframe} {kind} data for {symbol}: looked for "
            f"{_patterns(symbol, kind=kind, market=market, timeframe=timeframe)}",
            where=str(data_dir),
        )
    return paths


def _patterns(symbol: str, *, kind: str, market: str, timeframe: str) -> str:
    shared = f"<exchange>_{market}_{symbol}_{timeframe}_{kind}[_<part>].csv[.gz]"
    if kind == "funding":
        simple = f"{symbol}_funding.csv[.gz]"
    elif kind == "mark":
        simple = f"{symbol}_mark_{timeframe}.csv[.gz]"
    elif market == "spot":
        simple = f"{symbol}_spot_{timeframe}.csv[.gz]"
    else:
        simple = f"{symbol}_{timeframe}.csv[.gz] or {symbol}_perp_{timeframe}.csv[.gz]"
    return f"{shared} or {simple}"
