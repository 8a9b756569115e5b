"""`stagectl funding-scan`: funding carry and perp-spot basis per symbol (seed 001's
hourly scan), flagging where the carry turns.

Every symbol with a funding file in the data (the bundled sample or ``--data DIR``) is
scanned, or the ``--symbol`` ones. The basis needs perp and spot candles of one
timeframe (1h) in the same data; without them the symbol's basis is left out and said
so. The rules are in :mod:`stagectl.domain.carry`.

Entry: ``run(FundingScanRequest, *, home) -> FundingScanResult``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from stagectl.config.home import Home
from stagectl.data import files, loaders
from stagectl.data.bundled import SAMPLE_DIR
from stagectl.domain.carry import CARRY_WINDOWS, CarryScan, scan_carry
from stagectl.domain.jsonable import to_jsonable
from stagectl.errors import InputError

KIND = "funding-scan"
BASIS_TIMEFRAME = "1h"


@dataclass(frozen=True)
class FundingScanRequest:
    """``--data`` (None: the bundled sample), ``--symbol`` and ``--now``."""

    data_dir: Path | None = None
    symbols: tuple[str, ...] = ()
    now: datetime | None = None


@dataclass(frozen=True)
class FundingScanResult:
    """One scan per symbol, and the symbols whose basis could not be computed."""

    source: str
    scans: list[CarryScan]
    without_basis: list[str]

    @property
    def turned(self) -> list[CarryScan]:
        return [s for s in self.scans if s.turn is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "windows": {name: settlements for name, settlements in CARRY_WINDOWS},
            "symbols": [_scan_dict(s) for s in self.scans],
            "turned": [s.symbol for s in self.turned],
            "without_basis": self.without_basis,
        }


def _scan_dict(scan: CarryScan) -> dict[str, Any]:
    return {
        "symbol": scan.symbol,
        "as_of": to_jsonable(scan.as_of),
        "last_rate": scan.last_rate,
        "last_annualised": scan.last_annualised,
        "carry_annualised": scan.carry,
        "basis": None if scan.basis is None else to_jsonable(asdict(scan.basis)),
        "turn": scan.turn,
        "note": scan.note,
    }


def run(request: FundingScanRequest, *, home: Home) -> FundingScanResult:
    """Scan every selected symbol; InputError (exit 2) on unreadable or invalid files or
    a symbol without funding data at or before ``now``."""
    data_dir = SAMPLE_DIR if request.data_dir is None else request.data_dir
    available = {f.key for f in files.scan(data_dir)}
    scans, without_basis = [], []
    for symbol in _symbols(request, available, data_dir):
        funding = loaders.load_funding(symbol, data_dir=data_dir)
        perp, spot = (_close(symbol, market, available, data_dir) for market in ("perp", "spot"))
        if perp is None or spot is None:
            without_basis.append(symbol)
        try:
            scans.append(
                scan_carry(symbol, funding, perp_close=perp, spot_close=spot, now=request.now)
            )
        except ValueError as error:
            raise InputError(str(error), where="--now") from None
    return FundingScanResult(
        source="bundled" if request.data_dir is None else str(data_dir),
        scans=scans,
        without_basis=without_basis,
    )


def _symbols(
    request: FundingScanRequest, available: set[tuple[str, str, str, str]], data_dir: Path
) -> list[str]:
    if request.symbols:
        return sorted({files.normalize_symbol(s) for s in request.symbols})
    found = sorted({symbol for symbol, _, kind, _ in available if kind == "funding"})
    if not found:
        raise InputError("no funding files (see docs/data.md for the names)", where=str(data_dir))
    return found


def _close(
    symbol: str, market: str, available: set[tuple[str, str, str, str]], data_dir: Path
) -> pd.Series | None:
    """The market's 1h closes, or None when the data has no such candles."""
    if (symbol, market, "ohlcv", BASIS_TIMEFRAME) not in available:
        return None
    return loaders.load_candles(symbol, BASIS_TIMEFRAME, data_dir=data_dir, market=market)["close"]
