"""consensus: engine votes from a file -> score, adaptive decision, weights (seed 001 §1-2).

Votes file (CSV with a header, or JSON: a list of objects or ``{"votes": [...]}``), one
row per engine and timestamp (docs/research.md, "Votes file"):

- ``engine``: name; ``timestamp``: ISO-8601 (naive = UTC);
- ``side``: buy/long/+1, sell/short/-1 or wait/flat/0;
- ``prob``: probability in [0, 1] that the call is right; ``brier``: Brier score in
  [0, 1]; ``days_ago``: age of that score in days (>= 0);
- ``approved_regimes``: regimes the engine may vote in, separated by ``;`` or ``|`` in
  CSV (a list in JSON); empty means all of TREND, RANGE, PANIC, ILLIQUID.

Correlation file (optional): CSV matrix with a header ``engine,A,B,...`` and one row per
engine, or JSON ``{"A": {"A": 1, "B": 0.6}, ...}``; it must be symmetric and cover every
engine. Without it the engines are taken as uncorrelated (identity matrix), so the
correlation weights are equal. Without ``--regime`` nobody is gated out.

Per timestamp ``domain.consensus.consensus`` gives S and the weights; the series of S
feeds ``adaptive_decisions`` (k, window).

Entry: ``run(ConsensusRequest, *, home) -> ConsensusResult``; the files are the user's,
not the home's.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stagectl.config.home import Home
from stagectl.domain.consensus import (
    REGIMES,
    EngineVote,
    adaptive_decisions,
    consensus,
)
from stagectl.errors import InputError

SIDES = {
    "buy": 1,
    "long": 1,
    "+1": 1,
    "1": 1,
    "sell": -1,
    "short": -1,
    "-1": -1,
    "wait": 0,
    "flat": 0,
    "0": 0,
}
FIELDS = ("engine", "timestamp", "side", "prob", "brier", "days_ago")
NO_GATE = "ALL"


@dataclass(frozen=True)
class ConsensusRequest:
    """``--votes``, ``--correlation``, ``--regime`` (upper case), ``--k``, ``--window``
    and ``--half-life-days``."""

    votes: Path
    correlation: Path | None = None
    regime: str | None = None
    k: float = 0.75
    window: int = 100
    half_life_days: float = 30.0


@dataclass(frozen=True)
class ConsensusResult:
    """The consensus document: settings, engines, every step and the latest one."""

    body: dict[str, Any]


@dataclass(frozen=True)
class Row:
    timestamp: pd.Timestamp
    vote: EngineVote


def _read_records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, record) pairs; ``where`` is ``FILE:LINE`` for CSV, ``FILE[i]`` for JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot read the file ({error.strerror})", where=str(path)) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"not JSON: {error.msg}", where=f"{path}:{error.lineno}") from None
        items = data.get("votes") if isinstance(data, dict) else data
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InputError('expected a list of vote objects or {"votes": [...]}', where=str(path))
        return [(f"{path}[{i}]", item) for i, item in enumerate(items)]
    reader = csv.DictReader(text.splitlines())
    missing = [f for f in FIELDS if f not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"missing columns: {', '.join(missing)}", where=f"{path}:1")
    return [(f"{path}:{line}", row) for line, row in enumerate(reader, start=2)]


def _number(record: dict[str, Any], name: str, where: str) -> float:
    try:
        value = float(record[name])
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f"{name} must be a number, got {record.get(name)!r}", where=where
        ) from None
    if not np.isfinite(value):
        raise InputError(f"{name} must be finite", where=where)
    return value


def _regimes(raw: Any, where: str) -> frozenset[str]:
    if raw is None or raw == "" or raw == []:
        return frozenset(REGIMES)
    parts = raw if isinstance(raw, list) else str(raw).replace("|", ";").split(";")
    names = frozenset(str(p).strip().upper() for p in parts if str(p).strip())
    unknown = sorted(names - set(REGIMES) - {"NEUTRAL"})
    if unknown:
        raise InputError(f"unknown regimes {unknown}; use {', '.join(REGIMES)}", where=where)
    return names


def _timestamp(raw: Any, where: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(str(raw or ""))
    except ValueError:
        stamp = None
    if stamp is None or pd.isna(stamp):
        raise InputError(f"bad timestamp {raw!r}", where=where)
    return stamp


def _parse_votes(path: Path) -> list[Row]:
    rows = []
    for where, record in _read_records(path):
        side = SIDES.get(str(record.get("side", "")).strip().lower())
        if side is None:
            raise InputError(
                f"side must be buy, sell or wait, got {record.get('side')!r}", where=where
            )
        stamp = _timestamp(record.get("timestamp"), where)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        prob, brier = _number(record, "prob", where), _number(record, "brier", where)
        days_ago = _number(record, "days_ago", where)
        if not (0 <= prob <= 1 and 0 <= brier <= 1 and days_ago >= 0):
            raise InputError("need 0 <= prob <= 1, 0 <= brier <= 1, days_ago >= 0", where=where)
        engine = str(record.get("engine", "")).strip()
        if not engine:
            raise InputError("engine must not be empty", where=where)
        vote = EngineVote(
            engine, side, prob, brier, days_ago, _regimes(record.get("approved_regimes"), where)
        )
        rows.append(Row(stamp, vote))
    if not rows:
        raise InputError("no votes in the file", where=str(path))
    return rows


def _parse_correlation(path: Path) -> dict[tuple[str, str], float]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot read the file ({error.strerror})", where=str(path)) from None
    pairs: dict[tuple[str, str], float] = {}
    try:
        if path.suffix.lower() == ".json":
            for a, row in json.loads(text).items():
                for b, value in row.items():
                    pairs[(a, b)] = float(value)
        else:
            for record in csv.DictReader(text.splitlines()):
                a = record.pop("engine")
                for b, value in record.items():
                    pairs[(a, b)] = float(value)
    except (ValueError, AttributeError, KeyError, TypeError) as error:
        raise InputError(f"not a correlation matrix ({error})", where=str(path)) from None
    return pairs


def _matrix(engines: list[str], pairs: dict[tuple[str, str], float] | None, where: str) -> Any:
    if pairs is None:
        return np.eye(len(engines))
    try:
        return np.array([[pairs[(a, b)] for b in engines] for a in engines])
    except KeyError as error:
        raise InputError(f"no correlation for engines {error.args[0]}", where=where) from None


def run(request: ConsensusRequest, *, home: Home) -> ConsensusResult:
    if request.regime is not None and request.regime not in REGIMES:
        raise InputError(f"regime must be one of {', '.join(REGIMES)}", where="--regime")
    if request.window < 2 or request.k <= 0 or request.half_life_days <= 0:
        raise InputError("need --window >= 2, --k > 0, --half-life-days > 0")
    rows = _parse_votes(request.votes)
    pairs = None if request.correlation is None else _parse_correlation(request.correlation)
    by_time: dict[pd.Timestamp, list[EngineVote]] = {}
    for row in rows:
        by_time.setdefault(row.timestamp, []).append(row.vote)
    decisions = []
    regime = request.regime or NO_GATE
    for stamp in sorted(by_time):
        votes = by_time[stamp]
        engines = [v.engine for v in votes]
        if len(set(engines)) != len(engines):
            raise InputError(f"an engine votes twice at {stamp.isoformat()}", where="--votes")
        if request.regime is None:
            votes = [replace(v, approved_regimes=frozenset({NO_GATE})) for v in votes]
        result = consensus(
            votes,
            _matrix(engines, pairs, str(request.correlation)),
            regime=regime,
            half_life_days=request.half_life_days,
        )
        decisions.append((stamp, result))
    scores = pd.Series([r.score for _, r in decisions], index=[s for s, _ in decisions])
    table = adaptive_decisions(scores, k=request.k, window=request.window)
    steps = [
        {
            "timestamp": stamp.isoformat().replace("+00:00", "Z"),
            "score": result.score,
            "sigma": _opt(table["sigma"].iloc[i]),
            "threshold": _opt(table["threshold"].iloc[i]),
            "action": str(table["action"].iloc[i]),
            "weights": result.weights,
            "gated_out": result.gated_out,
        }
        for i, (stamp, result) in enumerate(decisions)
    ]
    body = {
        "settings": {
            "regime": request.regime,
            "regime_gate": "off (no --regime)" if request.regime is None else "on",
            "k": request.k,
            "window": request.window,
            "half_life_days": request.half_life_days,
            "correlation": "identity (no --correlation)"
            if pairs is None
            else str(request.correlation),
        },
        "engines": sorted({row.vote.engine for row in rows}),
        "timestamps": len(steps),
        "latest": steps[-1],
        "steps": steps,
    }
    return ConsensusResult(body)


def _opt(value: Any) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None
