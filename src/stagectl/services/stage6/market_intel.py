"""market-intel: load candles and funding, compute Stage6 Market Intel at ``now``.

The data source is the bundled sample (default) or a ``--data`` directory of CSV
files (docs/data.md names them). Symbols: core.yaml's mandatory symbols (each
required: a missing one is an InputError naming it) plus every other symbol with
perp 1h candles in the source that is in the universe of config/data.yaml (liquidity
and age, seed 001; a mandatory symbol is kept even when out, and the report's
``universe`` says which symbols are in and why others are out). Without ``--now``,
``now`` is the end of the data every symbol covers: the earliest (last bar open + one
bar) over the symbols, so no symbol is stale merely because the sample files end at
different hours.

Publication (``--out``) needs core.yaml's compliance sign-off
(``services.stage6.compliance``, seed 000): without one it is refused before any data
is loaded; a dry look runs and its result says the config has none.

Entry: ``run(MarketIntelRequest, *, home) -> MarketIntelResult``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagectl.config.home import ConfigSource, Home
from stagectl.config.loader import load_core, load_data_governance
from stagectl.errors import InputError
from stagectl.services.stage6 import compliance

if TYPE_CHECKING:
    from stagectl.config.core import CoreConfig
    from stagectl.config.data_governance import DataGovernanceConfig
    from stagectl.domain.data_quality import UniverseMember
    from stagectl.domain.market_intel import (
        MarketIntelReport,
        MarketIntelWindows,
        SymbolMarketData,
    )

TIMEFRAME = "1h"
KIND = "market-intel"


@dataclass(frozen=True)
class MarketIntelRequest:
    """``-c`` (core.yaml), ``--data`` (None: the bundled sample), ``--now`` (None: the
    end of the common data) and ``publish``: the option that publishes the result
    (``--out``), which needs the compliance sign-off; None: a dry look."""

    config: Path | None = None
    data_dir: Path | None = None
    now: datetime | None = None
    publish: str | None = None


@dataclass(frozen=True)
class MarketData:
    """Loaded per-symbol inputs, the files they came from and a label for the source."""

    symbols: dict[str, SymbolMarketData]
    files: list[Path]
    source: str

    def default_now(self) -> datetime:
        """The end of the common data: min over symbols of (last bar open + bar interval)."""
        import pandas as pd

        ends = []
        for item in self.symbols.values():
            index = pd.DatetimeIndex(item.candles.index)
            bar = index[-1] - index[-2] if len(index) > 1 else pd.Timedelta(hours=1)
            ends.append(index[-1] + bar)
        return min(ends).to_pydatetime()


@dataclass(frozen=True)
class MarketIntelResult:
    report: MarketIntelReport
    market: MarketData
    core: CoreConfig
    config: ConfigSource
    now: datetime
    now_given: bool
    compliance: compliance.Compliance
    universe: list[UniverseMember] = field(default_factory=list)

    @property
    def inputs(self) -> list[Path]:
        """What a published report hashes: core.yaml, its sign-off report, the data."""
        sign_off = self.compliance.sign_off
        signed = [sign_off.path] if sign_off is not None else []
        return [self.config.path, *signed, *self.market.files]

    def body(self) -> dict[str, Any]:
        """A JSON-ready document: as-of, source, one row per symbol and the aggregate, and
        the compliance sign-off it was computed under (None: a dry look)."""
        return {
            "as_of": self.now.isoformat().replace("+00:00", "Z"),
            "now_source": "--now" if self.now_given else "end of the common data",
            "source": self.market.source,
            "mandatory_symbols": list(self.core.market_intel.mandatory_symbols),
            "rows": [finite(row.to_dict()) for row in self.report.rows()],
            "universe": [member.to_dict() for member in self.universe],
            "compliance": self.compliance.record(),
        }


def finite(value: Any) -> Any:
    """NaN and infinities become None, recursively (canonical JSON refuses them)."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _available_symbols(data_dir: Path | None) -> set[str]:
    """Symbols with perp candles of the timeframe in the bundled sample or ``data_dir``."""
    return {s for s, m, k, _ in _datasets(data_dir) if m == "perp" and k == "ohlcv"}


def _datasets(data_dir: Path | None) -> set[tuple[str, str, str, str]]:
    if data_dir is None:
        from stagectl.data import bundled_datasets

        return {(d.symbol, d.market, d.kind, d.timeframe) for d in bundled_datasets()}
    from stagectl.data.files import scan

    return {f.key for f in scan(data_dir)}


def select_symbols(core: CoreConfig, data_dir: Path | None) -> list[str]:
    """Mandatory symbols first (all required), then the other symbols of the source."""
    from stagectl.domain.market_intel import MissingSymbolError, require_symbols

    mandatory = list(core.market_intel.mandatory_symbols)
    available = _available_symbols(data_dir)
    try:
        require_symbols(available, mandatory)
    except MissingSymbolError as error:
        source = str(data_dir) if data_dir is not None else "the bundled sample"
        raise InputError(
            f"mandatory Market Intel symbol(s) {', '.join(error.symbols)} have no perp "
            f"{TIMEFRAME} candles (market_intel.mandatory_symbols in core.yaml)",
            where=source,
        ) from None
    return mandatory + sorted(available - set(mandatory))


def load_market(symbols: list[str], data_dir: Path | None) -> MarketData:
    """Perp candles (required), funding and spot candles (when present) per symbol."""
    from stagectl.data.loaders import read_candles, read_funding
    from stagectl.domain.market_intel import SymbolMarketData

    present = _datasets(data_dir)
    loaded: dict[str, SymbolMarketData] = {}
    paths: list[Path] = []
    for symbol in symbols:
        candles = read_candles(symbol, TIMEFRAME, data_dir=data_dir)
        paths += candles.files
        funding = spot = None
        if any(s == symbol and k == "funding" for s, _, k, _ in present):
            read = read_funding(symbol, data_dir=data_dir)
            funding, paths = read.frame["funding_rate"], paths + read.files
        if (symbol, "spot", "ohlcv", TIMEFRAME) in present:
            read = read_candles(symbol, TIMEFRAME, data_dir=data_dir, market="spot")
            spot, paths = read.frame, paths + read.files
        loaded[symbol] = SymbolMarketData(candles.frame, funding, spot)
    source = str(data_dir) if data_dir is not None else "bundled sample"
    return MarketData(loaded, paths, source)


def windows_from(core: CoreConfig) -> MarketIntelWindows:
    """G's windows with core.yaml's default weight (1.15, seed 000)."""
    from stagectl.domain.market_intel import MarketIntelWindows

    return MarketIntelWindows(default_weight=core.market_intel.default_weight)


def compute(market: MarketData, now: datetime, core: CoreConfig) -> MarketIntelReport:
    """Market Intel at ``now``; too little data around ``now`` is an InputError."""
    from stagectl.domain.market_intel import InsufficientDataError, compute_market_intel

    try:
        return compute_market_intel(
            market.symbols,
            now,
            required_symbols=core.market_intel.mandatory_symbols,
            windows=windows_from(core),
        )
    except InsufficientDataError as error:
        raise InputError(
            f"not enough data for Market Intel at {now.isoformat()}: {error}", where="--now"
        ) from None


def run(request: MarketIntelRequest, *, home: Home) -> MarketIntelResult:
    """Load core.yaml, look for its compliance sign-off (refuse publication without one),
    load the data, then compute Market Intel."""
    core, source = load_core(home, request.config)
    gate = compliance.check(source, home=home)
    if request.publish is not None:
        gate.require(f"market-intel {request.publish}")
    market = load_market(select_symbols(core, request.data_dir), request.data_dir)
    market, members = apply_universe(market, core, load_data_governance(home)[0])
    now = request.now
    at = now if now is not None else market.default_now()
    report = compute(market, at, core)
    return MarketIntelResult(report, market, core, source, at, now is not None, gate, members)


def apply_universe(
    market: MarketData, core: CoreConfig, rules: DataGovernanceConfig
) -> tuple[MarketData, list[UniverseMember]]:
    """The universe rules on every loaded symbol; optional symbols out of it are dropped
    (with their files), mandatory ones kept (core.yaml requires them)."""
    from stagectl.data.files import classify
    from stagectl.domain.data_quality import UniversePolicy, universe_member

    policy = UniversePolicy.of(rules.universe)
    members = [universe_member(s, d.candles, policy) for s, d in market.symbols.items()]
    mandatory = set(core.market_intel.mandatory_symbols)
    kept = {m.symbol for m in members if m.included or m.symbol in mandatory}
    if len(kept) == len(members):
        return market, members
    dropped = {m.symbol for m in members} - kept
    files = [p for p in market.files if getattr(classify(p), "symbol", None) not in dropped]
    symbols = {s: d for s, d in market.symbols.items() if s in kept}
    return MarketData(symbols, files, market.source), members
