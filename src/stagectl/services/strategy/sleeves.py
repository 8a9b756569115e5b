"""Build the backtest sleeves of a strategy config from candle and funding data.

One path from config + data to :class:`~stagectl.domain.backtest.SleeveSpec`
objects, shared by ``stagectl backtest``, the risk-guard replay and run-live,
so that they all trade exactly the same targets:

    build_sleeves(config, data_dir, start, end, *, symbol=None)
        -> (list[SleeveSpec], SleeveBuildInfo)

- ``config``: a :class:`~stagectl.config.strategy.StrategyConfig`
  (``config.loader.load_strategy``).
- ``data_dir``: a directory of CSV files, or None for the bundled sample.
- ``start`` / ``end``: timezone-aware UTC datetimes or None (the whole overlap).
  ``start`` is inclusive; ``end`` is inclusive of the bar opening at ``end``
  (the CLI's ``parse_utc`` turns a date-only ``--end`` into the end of that day).
- ``symbol``: backtest that one sleeve alone at weight 1.0.

Steps, in this order:

1. load each sleeve's candles (``config.timeframe``) and, when
   ``costs.funding_enabled``, its funding; a missing funding file is an
   InputError (charging no funding would flatter the result silently);
2. align the sleeves on the intersection of their bar indexes (the info says
   when that cut the range). A sleeve whose data ends more than ``delisting_grace``
   (7 days, config/data.yaml ``delisting.grace_days``) before the latest sleeve's is
   taken as delisted (seed 001, survivorship): the others go on, its opens after its
   last bar repeat that bar's open, its position is closed at that open (costs
   charged; ``SleeveSpec.last_bar``) and the info's notes and ``delisted`` say so.
   A series ending within the grace is a stale download: cut to the common end;
3. per sleeve, on the whole aligned history up to ``end``: ``tsmom_multi_ema``
   or ``tsmom_ema`` of the closes, then ``debounce`` with
   ``execution.debounce_bars`` when ``execution.debounce`` is on. Bars before
   ``start`` serve as signal warm-up, so the signal is warm on the first bar of
   the window when enough history exists (the info gives the bars used);
4. cut opens and targets to ``[start, end]``. ``run_backtest`` then holds
   ``target[k - signal_delay]`` over bar k, starting flat: the first
   ``signal_delay`` bars of the window are flat and the first trade is the
   entry from flat at the open of bar ``signal_delay``.

Weights are ``weight_pct / 100``. ``SleeveBuildInfo.dollar_volume`` (volume x
close per sleeve, on the window) feeds the capacity estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from stagectl.data.bundled import SAMPLE_DIR
from stagectl.data.files import normalize_symbol
from stagectl.data.loaders import read_candles, read_funding
from stagectl.domain.backtest import SleeveSpec
from stagectl.domain.performance import bar_minutes
from stagectl.domain.strategies import debounce, tsmom_ema, tsmom_multi_ema
from stagectl.errors import InputError

if TYPE_CHECKING:
    from stagectl.config.strategy import SleeveConfig, StrategyConfig


@dataclass(frozen=True)
class SleeveBuildInfo:
    """What ``build_sleeves`` used and decided, for reports and stderr lines."""

    data_source: str
    files: list[Path]
    symbols: list[str]
    weights: dict[str, float]
    single_symbol: bool
    start: datetime
    end: datetime
    bars: int
    overlap_start: datetime
    overlap_end: datetime
    cut_to_overlap: bool
    missing_bars: int
    warmup_bars_needed: int
    warmup_bars_used: int
    dollar_volume: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    delisted: dict[str, datetime] = field(default_factory=dict)
    """Sleeves whose data ends inside the window: symbol -> its last bar."""


def select_sleeves(config: StrategyConfig, symbol: str | None) -> list[SleeveConfig]:
    """The config's sleeves, or the one trading ``symbol`` at weight 100 %."""
    if symbol is None:
        return list(config.sleeves)
    wanted = normalize_symbol(symbol)
    for sleeve in config.sleeves:
        if sleeve.symbol == wanted:
            return [sleeve.model_copy(update={"weight_pct": 100.0})]
    known = ", ".join(s.symbol for s in config.sleeves)
    raise InputError(
        f"{symbol!r} is not a sleeve of this strategy (sleeves: {known})", where="--symbol"
    )


def sleeve_target(sleeve: SleeveConfig, close: pd.Series, config: StrategyConfig) -> pd.Series:
    """The sleeve's signal on ``close``, debounced as the config says."""
    if sleeve.signal == "tsmom_multi_ema":
        raw = tsmom_multi_ema(close, sleeve.lookbacks, sleeve.disagree_weight)
    else:
        raw = tsmom_ema(close, sleeve.lookbacks[0])
    execution = config.execution
    if execution.debounce and execution.debounce_bars > 1:
        return debounce(raw, execution.debounce_bars)
    return raw


@dataclass(frozen=True)
class SleeveData:
    """Candles and, when funding is enabled, funding rates of some symbols, with the files
    read and the loaders' notes. Loaded once, it can build many windows and variants
    (``backtest --grid`` sends it to each Dask worker once)."""

    candles: dict[str, pd.DataFrame] = field(default_factory=dict)
    funding: dict[str, pd.Series | None] = field(default_factory=dict)
    files: dict[str, list[Path]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def files_of(self, symbols: list[str]) -> list[Path]:
        return [path for symbol in symbols for path in self.files[symbol]]

    def notes_of(self, symbols: list[str]) -> list[str]:
        return [note for symbol in symbols for note in self.notes[symbol]]


def load_sleeve_data(
    config: StrategyConfig, symbols: Sequence[str], data_dir: Path | None
) -> SleeveData:
    """Step 1 of the module docstring for ``symbols`` (each read once)."""
    data = SleeveData()
    for symbol in dict.fromkeys(symbols):
        candles = read_candles(symbol, config.timeframe, data_dir=data_dir)
        data.candles[symbol] = candles.frame
        data.files[symbol] = list(candles.files)
        data.notes[symbol] = [f"{symbol} candles: {note}" for note in candles.notes]
        if not config.costs.funding_enabled:
            data.funding[symbol] = None
            continue
        try:
            funding = read_funding(symbol, data_dir=data_dir)
        except InputError as error:
            raise InputError(
                f"{error.message}; funding is enabled in the strategy config "
                "(costs.funding_enabled), so its rates are required",
                where=error.where,
            ) from None
        data.funding[symbol] = funding.frame["funding_rate"]
        data.files[symbol].extend(funding.files)
    return data


DELISTING_GRACE = pd.Timedelta(days=7)


def _ends(candles: dict[str, pd.DataFrame], grace: pd.Timedelta) -> dict[str, pd.Timestamp]:
    """The symbols whose data ends more than ``grace`` before the latest one's: last bar."""
    lasts = {s: pd.Timestamp(f.index[-1]) for s, f in candles.items() if len(f)}
    if not lasts:
        return {}
    latest = max(lasts.values())
    return {s: last for s, last in lasts.items() if last < latest - grace}


def _common_index(
    candles: dict[str, pd.DataFrame], ends: dict[str, pd.Timestamp] | None = None
) -> pd.DatetimeIndex:
    """The bars every sleeve has; a delisted sleeve (``ends``) does not cut the bars
    after its last one (the others' bars there count as its own)."""
    ends = ends or {}
    indexes = {s: pd.DatetimeIndex(frame.index) for s, frame in candles.items()}
    alive = [index for s, index in indexes.items() if s not in ends]
    after = alive[0]
    for other in alive[1:]:
        after = after.intersection(other)
    common: pd.DatetimeIndex | None = None
    for symbol, index in indexes.items():
        if symbol in ends:
            index = index.union(after[after > ends[symbol]])
        common = index if common is None else common.intersection(index)
    assert common is not None
    return common


def _cut_by_overlap(
    candles: dict[str, pd.DataFrame], start: datetime | None, end: datetime | None, bars: int
) -> bool:
    """True when some sleeve has bars in [start, end] that are not common to all sleeves."""
    for frame in candles.values():
        first, stop = _window(pd.DatetimeIndex(frame.index), start, end)
        if stop - first > bars:
            return True
    return False


def _window(
    index: pd.DatetimeIndex, start: datetime | None, end: datetime | None
) -> tuple[int, int]:
    """Positions [first, stop) of the bars with start <= t <= end."""
    first = 0 if start is None else int(index.searchsorted(pd.Timestamp(start), side="left"))
    stop = len(index) if end is None else int(index.searchsorted(pd.Timestamp(end), side="right"))
    return first, stop


def _stamp(moment: datetime | pd.Timestamp) -> str:
    return pd.Timestamp(moment).floor("s").isoformat().replace("+00:00", "Z")


def build_sleeves(
    config: StrategyConfig,
    data_dir: Path | None,
    start: datetime | None,
    end: datetime | None,
    *,
    symbol: str | None = None,
    data: SleeveData | None = None,
    delisting_grace: pd.Timedelta = DELISTING_GRACE,
) -> tuple[list[SleeveSpec], SleeveBuildInfo]:
    """The strategy's sleeves on ``[start, end]``; the steps are in the module docstring.
    ``data``: already loaded candles and funding of (at least) the sleeves' symbols,
    read from ``data_dir``; without it they are read now."""
    if start is not None and end is not None and start > end:
        raise InputError(f"--start {_stamp(start)} is after --end {_stamp(end)}")
    chosen = select_sleeves(config, symbol)
    symbols = [sleeve.symbol for sleeve in chosen]
    if data is None:
        data = load_sleeve_data(config, symbols, data_dir)
    candles = {symbol: data.candles[symbol] for symbol in symbols}
    ends = _ends(candles, delisting_grace)
    common = _common_index(candles, ends)
    if common.empty:
        raise InputError(f"the candles of {', '.join(symbols)} have no bar in common", where="data")
    first, stop = _window(common, start, end)
    if stop - first < 2:
        raise InputError(
            f"fewer than 2 common bars between {_stamp(start or common[0])} and "
            f"{_stamp(end or common[-1])}; the data covers {_stamp(common[0])} .. "
            f"{_stamp(common[-1])}",
            where="--start/--end",
        )
    history = common[:stop]
    window = common[first:stop]
    specs: list[SleeveSpec] = []
    volume: dict[str, pd.Series] = {}
    delisted: dict[str, datetime] = {}
    for sleeve in chosen:
        last = ends.get(sleeve.symbol)
        frame = candles[sleeve.symbol]
        if last is None:
            frame = frame.loc[history]
        else:
            frame = frame.reindex(history).ffill()
            frame.loc[frame.index > last, "volume"] = 0.0
        target = sleeve_target(sleeve, frame["close"], config)
        in_window = frame.iloc[first:]
        ends_inside = last is not None and last < window[-1]
        if last is not None and ends_inside:
            delisted[sleeve.symbol] = last.to_pydatetime()
        specs.append(
            SleeveSpec(
                symbol=sleeve.symbol,
                open=in_window["open"],
                target=target.iloc[first:],
                weight=sleeve.weight_pct / 100.0,
                funding=data.funding[sleeve.symbol],
                last_bar=last if ends_inside else None,
            )
        )
        volume[sleeve.symbol] = in_window["volume"] * in_window["close"]
    info = SleeveBuildInfo(
        data_source=f"bundled sample ({SAMPLE_DIR})" if data_dir is None else str(data_dir),
        files=data.files_of(symbols),
        symbols=symbols,
        weights={s.symbol: s.weight for s in specs},
        single_symbol=symbol is not None,
        start=window[0].to_pydatetime(),
        end=window[-1].to_pydatetime(),
        bars=len(window),
        overlap_start=common[0].to_pydatetime(),
        overlap_end=common[-1].to_pydatetime(),
        cut_to_overlap=_cut_by_overlap(candles, start, end, len(window)),
        missing_bars=_missing_bars(window, config.timeframe),
        warmup_bars_needed=_warmup_needed(chosen, config),
        warmup_bars_used=first,
        dollar_volume=pd.DataFrame(volume, index=window),
        notes=data.notes_of(symbols),
        delisted=delisted,
    )
    funding = {symbol: data.funding[symbol] for symbol in symbols}
    return specs, replace(info, notes=[*info.notes, *_notes(info, funding, config)])


def _warmup_needed(sleeves: list[SleeveConfig], config: StrategyConfig) -> int:
    """Bars before a target can first be non-zero: the longest lookback plus debounce."""
    extra = config.execution.debounce_bars - 1 if config.execution.debounce else 0
    return max(max(s.lookbacks) for s in sleeves) + max(extra, 0)


def _missing_bars(window: pd.DatetimeIndex, timeframe: str) -> int:
    step = pd.Timedelta(minutes=bar_minutes(timeframe))
    expected = int((window[-1] - window[0]) / step) + 1
    return expected - len(window)


def _notes(
    info: SleeveBuildInfo, funding_of: dict[str, pd.Series | None], config: StrategyConfig
) -> list[str]:
    notes: list[str] = [
        f"{symbol} data ends at {_stamp(last)}, before the period's end (delisted): its "
        "position is closed at that bar's open with its costs, and the sleeve is flat after"
        for symbol, last in info.delisted.items()
    ]
    if info.warmup_bars_used >= info.warmup_bars_needed:
        notes.append(
            f"signal warm-up: {info.warmup_bars_used} bars before the start were used "
            f"({info.warmup_bars_needed} needed), so the signal is warm on the first bar"
        )
    else:
        notes.append(
            f"signal warm-up: {info.warmup_bars_used} bars of data before the start, "
            f"{info.warmup_bars_needed} needed; each sleeve is flat until its signal is warm "
            f"(up to the first {info.warmup_bars_needed - info.warmup_bars_used} bars)"
        )
    if info.missing_bars:
        notes.append(
            f"{info.missing_bars} {config.timeframe} bars are missing from the common index; "
            "returns across a gap are taken open to open"
        )
    for symbol, funding in funding_of.items():
        if funding is None or funding.empty:
            continue
        first, last = pd.Timestamp(funding.index[0]), pd.Timestamp(funding.index[-1])
        if first > pd.Timestamp(info.start) + pd.Timedelta(hours=8):
            notes.append(
                f"{symbol} funding data starts at {_stamp(first)}; earlier settlements are "
                "not charged"
            )
        if last < pd.Timestamp(info.end) - pd.Timedelta(hours=8):
            notes.append(
                f"{symbol} funding data ends at {_stamp(last)}; later settlements are not charged"
            )
    if not config.costs.funding_enabled:
        notes.append("funding is disabled in the strategy config (costs.funding_enabled)")
    return notes
