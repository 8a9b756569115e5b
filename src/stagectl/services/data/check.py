"""`stagectl data check`: validate and govern market data, report what was found.

Every dataset (bundled sample, or the recognised files of ``--data DIR``) is loaded
with full validation (stagectl.data.loaders) and run through the governance rules
of stagectl.domain.data_quality. A dataset has problems when rows had to be
sorted, timestamps were off the bar grid, bars were filled or are missing, outliers
were flagged, or (bundled sample only) a file no longer matches its manifest sha256.

Entry: ``run(DataCheckRequest, *, home) -> DataCheckResult``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.data import files, loaders
from stagectl.data.bundled import SAMPLE_DIR, bundled_datasets
from stagectl.domain.data_quality import (
    QualityPolicy,
    QualityReport,
    govern_candles,
    govern_funding,
    timeframe_seconds,
)
from stagectl.errors import InputError


@dataclass(frozen=True)
class DataCheckRequest:
    """``--data`` (None: the bundled sample), ``--symbol``, ``--timeframe`` and the
    governance thresholds."""

    data_dir: Path | None = None
    symbols: tuple[str, ...] = ()
    timeframe: str | None = None
    policy: QualityPolicy = field(default_factory=QualityPolicy)


@dataclass(frozen=True)
class DatasetCheck:
    """One dataset's validation and governance outcome."""

    symbol: str
    market: str
    kind: str
    timeframe: str
    files: list[str]
    report: QualityReport
    resorted: bool = False
    integrity_ok: bool | None = None

    @property
    def clean(self) -> bool:
        return self.report.clean and not self.resorted and self.integrity_ok is not False

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "market": self.market,
            "kind": self.kind,
            "timeframe": self.timeframe,
            "files": self.files,
            "clean": self.clean,
            "resorted": self.resorted,
            "sha256_ok": self.integrity_ok,
            "quality": self.report.to_dict(),
        }


@dataclass(frozen=True)
class DataCheckResult:
    source: str
    policy: QualityPolicy
    datasets: list[DatasetCheck]
    ignored_files: list[str]

    @property
    def clean(self) -> bool:
        return all(d.clean for d in self.datasets)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "clean": self.clean,
            "policy": {
                "max_fill_gap_min": self.policy.max_fill_gap_min,
                "outlier_z": self.policy.outlier_z,
            },
            "datasets": [d.to_dict() for d in self.datasets],
            "ignored_files": self.ignored_files,
        }


def _select(request: DataCheckRequest, data_dir: Path) -> list[files.DataFile]:
    symbols = {files.normalize_symbol(s) for s in request.symbols}
    if request.timeframe is not None:
        timeframe_seconds(request.timeframe)
    found = [
        f
        for f in files.scan(data_dir)
        if (not symbols or f.symbol in symbols)
        and (request.timeframe is None or f.timeframe == request.timeframe)
    ]
    if not found:
        wanted = ", ".join(sorted(symbols)) or "any symbol"
        raise InputError(
            f"no datasets for {wanted} at timeframe {request.timeframe or 'any'} "
            "(see docs/data.md for the file names --data accepts)",
            where=str(data_dir),
        )
    return found


def _ignored(data_dir: Path) -> list[str]:
    return sorted(
        p.name
        for p in data_dir.iterdir()
        if p.is_file() and p.name.endswith((".csv", ".csv.gz")) and files.classify(p) is None
    )


def _integrity(paths: list[Path]) -> bool:
    expected = {d.file: d.sha256 for d in bundled_datasets()}
    return all(expected.get(p.name) == hashlib.sha256(p.read_bytes()).hexdigest() for p in paths)


def _check_one(
    key: tuple[str, str, str, str], data_dir: Path, policy: QualityPolicy, bundled: bool
) -> DatasetCheck:
    symbol, market, kind, timeframe = key
    bar_s = timeframe_seconds(timeframe)
    if kind == "funding":
        loaded = loaders.read_funding(symbol, data_dir=data_dir)
        _, report = govern_funding(loaded.frame[loaders.FUNDING_COLUMN], bar_s)
    else:
        loaded = loaders.read_candles(symbol, timeframe, data_dir=data_dir, market=market)
        _, report = govern_candles(loaded.frame, bar_s, policy)
    return DatasetCheck(
        symbol=symbol,
        market=market,
        kind=kind,
        timeframe=timeframe,
        files=[p.name for p in loaded.files],
        report=report,
        resorted=loaded.resorted,
        integrity_ok=_integrity(loaded.files) if bundled else None,
    )


def run(request: DataCheckRequest, *, home: Home) -> DataCheckResult:
    """Check every selected dataset; InputError (exit 2) on unreadable or invalid files.

    The data is the bundled sample or ``request.data_dir``, never ``home``'s."""
    bundled = request.data_dir is None
    data_dir = SAMPLE_DIR if request.data_dir is None else request.data_dir
    keys = sorted({f.key for f in _select(request, data_dir)}, key=_order)
    checks = [_check_one(key, data_dir, request.policy, bundled) for key in keys]
    return DataCheckResult(
        source="bundled" if bundled else str(data_dir),
        policy=request.policy,
        datasets=checks,
        ignored_files=[] if bundled else _ignored(data_dir),
    )


def _order(key: tuple[str, str, str, str]) -> tuple[str, str, str, int]:
    symbol, market, kind, timeframe = key
    return (symbol, market, kind, timeframe_seconds(timeframe))
