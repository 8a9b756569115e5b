"""`stagectl data check`: validate and govern market data, report what was found.

Every dataset (bundled sample, or the recognised files of ``--data DIR``) is loaded
with full validation (stagectl.data.loaders) and run through the governance rules
of stagectl.domain.data_quality. A dataset has problems when rows had to be
sorted, timestamps were off the bar grid, bars were filled or are missing, outliers
were flagged, a cross-check against a second source found bars outside its
tolerance, or (bundled sample only) a file no longer matches its manifest sha256.

Cross-checks (by naming convention): a perp OHLCV dataset's closes against the spot
closes of the same symbol and timeframe, and its opens against the perp mark prices
(``..._<tf>_mark``), wherever those files are in the data directory or in
``reference_dir``. The universe rules (config/data.yaml ``universe``) are applied to
every symbol with perp candles and reported (in, or out and why); a symbol out of the
universe is not a data problem.

Entry: ``run(DataCheckRequest, *, home) -> DataCheckResult``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from stagectl.config.home import Home
from stagectl.data import files, loaders
from stagectl.data.bundled import SAMPLE_DIR, bundled_datasets
from stagectl.domain.data_quality import (
    CrossCheck,
    QualityPolicy,
    QualityReport,
    UniverseMember,
    UniversePolicy,
    cross_check,
    govern_candles,
    govern_funding,
    timeframe_seconds,
    universe_member,
)
from stagectl.errors import InputError


@dataclass(frozen=True)
class Tolerances:
    """Cross-check tolerances in bps (config/data.yaml ``cross_check``)."""

    perp_spot_bps: float = 100.0
    mark_last_bps: float = 100.0


@dataclass(frozen=True)
class DataCheckRequest:
    """``--data`` (None: the bundled sample), ``--symbol``, ``--timeframe``, the second
    source's directory (``--reference``; None: the data directory) and the rules."""

    data_dir: Path | None = None
    symbols: tuple[str, ...] = ()
    timeframe: str | None = None
    policy: QualityPolicy = field(default_factory=QualityPolicy)
    reference_dir: Path | None = None
    tolerances: Tolerances = field(default_factory=Tolerances)
    universe: UniversePolicy = field(default_factory=UniversePolicy)


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
    cross_checks: tuple[CrossCheck, ...] = ()

    @property
    def clean(self) -> bool:
        return (
            self.report.clean
            and not self.resorted
            and self.integrity_ok is not False
            and all(c.ok for c in self.cross_checks)
        )

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
            "cross_checks": [c.to_dict() for c in self.cross_checks],
        }


@dataclass(frozen=True)
class DataCheckResult:
    source: str
    policy: QualityPolicy
    datasets: list[DatasetCheck]
    ignored_files: list[str]
    tolerances: Tolerances = field(default_factory=Tolerances)
    universe_policy: UniversePolicy = field(default_factory=UniversePolicy)
    universe: list[UniverseMember] = field(default_factory=list)

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
                "clip_outliers": self.policy.clip_outliers,
                "perp_spot_tolerance_bps": self.tolerances.perp_spot_bps,
                "mark_last_tolerance_bps": self.tolerances.mark_last_bps,
                "universe": {
                    "min_avg_daily_volume_usd": self.universe_policy.min_avg_daily_volume_usd,
                    "min_history_days": self.universe_policy.min_history_days,
                    "volume_window_days": self.universe_policy.volume_window_days,
                },
            },
            "datasets": [d.to_dict() for d in self.datasets],
            "universe": [m.to_dict() for m in self.universe],
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


Key = tuple[str, str, str, str]


@dataclass
class _Session:
    """One run's directories, rules and the frames already read (each file once)."""

    request: DataCheckRequest
    data_dir: Path
    bundled: bool
    available: dict[Key, Path]
    frames: dict[Key, pd.DataFrame] = field(default_factory=dict)

    def frame(self, key: Key) -> pd.DataFrame:
        if key not in self.frames:
            symbol, market, kind, timeframe = key
            where = self.available[key]
            if kind == "mark":
                loaded = loaders.read_marks(symbol, timeframe, data_dir=where)
            else:
                loaded = loaders.read_candles(symbol, timeframe, data_dir=where, market=market)
            self.frames[key] = loaded.frame
        return self.frames[key]


def _check_one(key: Key, session: _Session) -> DatasetCheck:
    symbol, market, kind, timeframe = key
    bar_s = timeframe_seconds(timeframe)
    data_dir = session.data_dir
    source = f"{data_dir} {symbol} {market} {timeframe} {kind}"
    if kind == "funding":
        loaded = loaders.read_funding(symbol, data_dir=data_dir)
        _, report = govern_funding(loaded.frame[loaders.FUNDING_COLUMN], bar_s, source=source)
    elif kind == "mark":
        loaded = loaders.read_marks(symbol, timeframe, data_dir=data_dir)
        _, report = govern_funding(loaded.frame[loaders.MARK_COLUMN], bar_s, source=source)
    else:
        loaded = loaders.read_candles(symbol, timeframe, data_dir=data_dir, market=market)
        _, report = govern_candles(loaded.frame, bar_s, session.request.policy, source=source)
    session.frames[key] = loaded.frame
    return DatasetCheck(
        symbol=symbol,
        market=market,
        kind=kind,
        timeframe=timeframe,
        files=[p.name for p in loaded.files],
        report=report,
        resorted=loaded.resorted,
        integrity_ok=_integrity(loaded.files) if session.bundled else None,
        cross_checks=_cross_checks(key, session),
    )


def _cross_checks(key: Key, session: _Session) -> tuple[CrossCheck, ...]:
    """Perp candles against spot closes and mark prices, where those files exist."""
    symbol, market, kind, timeframe = key
    if (market, kind) != ("perp", "ohlcv"):
        return ()
    tolerances = session.request.tolerances
    candles = session.frame(key)
    checks = []
    spot: Key = (symbol, "spot", "ohlcv", timeframe)
    if spot in session.available:
        reference = session.frame(spot)["close"]
        checks.append(
            cross_check(candles["close"], reference, tolerances.perp_spot_bps, "perp vs spot close")
        )
    mark: Key = (symbol, "perp", "mark", timeframe)
    if mark in session.available:
        marks = session.frame(mark)[loaders.MARK_COLUMN]
        checks.append(
            cross_check(marks, candles["open"], tolerances.mark_last_bps, "mark vs last (open)")
        )
    return tuple(checks)


def _available(data_dir: Path, reference_dir: Path | None) -> dict[Key, Path]:
    """Every dataset key and the directory holding it (the data directory first)."""
    found: dict[Key, Path] = {}
    for directory in (d for d in (reference_dir, data_dir) if d is not None):
        found.update({f.key: directory for f in files.scan(directory)})
    return found


def _universe(keys: list[Key], session: _Session) -> list[UniverseMember]:
    """The universe rules on each symbol's perp candles (its shortest timeframe checked)."""
    chosen: dict[str, Key] = {}
    for key in keys:
        symbol, market, kind, _ = key
        if (market, kind) == ("perp", "ohlcv") and symbol not in chosen:
            chosen[symbol] = key
    return [
        universe_member(symbol, session.frame(key), session.request.universe)
        for symbol, key in sorted(chosen.items())
    ]


def run(request: DataCheckRequest, *, home: Home) -> DataCheckResult:
    """Check every selected dataset; InputError (exit 2) on unreadable or invalid files.

    The data is the bundled sample or ``request.data_dir``, never ``home``'s."""
    bundled = request.data_dir is None
    data_dir = SAMPLE_DIR if request.data_dir is None else request.data_dir
    keys = sorted({f.key for f in _select(request, data_dir)}, key=_order)
    session = _Session(request, data_dir, bundled, _available(data_dir, request.reference_dir))
    checks = [_check_one(key, session) for key in keys]
    return DataCheckResult(
        source="bundled" if bundled else str(data_dir),
        policy=request.policy,
        datasets=checks,
        ignored_files=[] if bundled else _ignored(data_dir),
        tolerances=request.tolerances,
        universe_policy=request.universe,
        universe=_universe(keys, session),
    )


def _order(key: Key) -> tuple[str, str, str, int]:
    symbol, market, kind, timeframe = key
    return (symbol, market, kind, timeframe_seconds(timeframe))
