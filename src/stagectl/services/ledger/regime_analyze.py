"""``stagectl regime-analyze``: PnL windows joined with real 1-minute candles (seed 004, 001).

Candle side (always): seed 001's regime per bar (``domain.regimes.classify_regimes`` on
``regime_inputs``), its share of time, ADX, and the maker's volatility switches
(``threshold_states`` with maker.yaml's thresholds) over the external volatility (per-minute
sigma of 1-minute closes over 60 minutes) and the internal EMA volatility at both half-lives.

PnL side (when windows exist, from ``--windows`` CSV or the ledger): each window's return is
taken from candle mids (the close of the bar that ended at or before each bound), its sigma
is the std (ddof=1) of the 1-minute log returns that end inside it, its regime is the regime
of the last bar that ended at or before its start (no look-ahead). Buckets by trend,
volatility, session, regime and trend x volatility: count, mean and total PnL, win rate; and
the correlation of realized PnL with inventory delta.

What belongs together (``data.segments``): every ``--candles`` file must be of the symbol
analysed (``--symbol``, else the one the files name); several files are joined in time as
segments, and every windowed indicator (ADX, the volatility and volume windows, the EMA
volatilities, the switches' hysteresis) restarts after a gap, so nothing bridges one; a
window reaching into a gap is not joined. The ledger side reads only the symbol's fills
inside the candles' time range (``ledger_windows``), through the ``(symbol, ts)`` index.

Entry: ``run(RegimeRequest, *, home) -> RegimeResult``; with ``export_dir`` it writes
regimes.csv, the bucket tables and the joined windows there, then with ``html`` the page,
and the result lists what it wrote (``exported``, ``html``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagectl.config.home import Home
from stagectl.config.state_url import StateLocation, state_exists
from stagectl.errors import InputError

if TYPE_CHECKING:
    from stagectl.data.segments import CandleSet
    from stagectl.state.db import StateDB

WINDOW_COLUMNS = ("window_start", "window_end", "realized_fifo_quote", "inventory_delta_base")
DIMENSIONS = ("trend", "volatility", "session", "regime", "trend_x_volatility")


@dataclass(frozen=True)
class RegimeRequest:
    symbol: str | None  # --symbol; None: the symbol the candle files name
    candles: tuple[Path, ...]
    windows_csv: Path | None = None
    window_s: float | None = None
    config: Path | None = None
    export_dir: Path | None = None  # --export: regimes.csv, buckets_*.csv, windows.csv
    html: Path | None = None  # --html: the self-contained page


@dataclass
class RegimeResult:
    document: dict[str, Any]
    bars: Any  # DataFrame per bar: adx inputs, regime, volatility measures
    windows: Any  # DataFrame per PnL window with its buckets (may be empty)
    candles: CandleSet
    buckets: dict[str, Any] = field(default_factory=dict)  # dimension -> DataFrame
    adx_period: int = 14
    exported: tuple[Path, ...] = ()  # the CSV files written into request.export_dir
    html: Path | None = None  # the page written (request.html)


def load_candles(paths: tuple[Path, ...]) -> CandleSet:
    """The ``--candles`` files joined as one ``data.segments.CandleSet`` (one symbol, one
    interval, overlaps only where the files agree, gaps recorded)."""
    from stagectl.data.segments import read_candle_set

    candles = read_candle_set(paths)
    if len(candles.frame) < 2:
        raise InputError("need at least two candles", where=str(paths[0]))
    return candles


def resolve_symbol(candles: CandleSet, given: str | None) -> tuple[str, list[str]]:
    """The symbol analysed: ``--symbol`` when given (every file that names a symbol must
    name it), else the one the files name; and the notes about it."""
    from stagectl.data.segments import check_candle_symbol

    symbol = given or candles.symbol
    if symbol is None:
        raise InputError(
            "cannot tell the candles' symbol from the file name or a symbol column; pass --symbol",
            where=str(candles.files[0].path),
        )
    notes = check_candle_symbol(candles, symbol, symbol_is="--symbol is", vouched=given is not None)
    return symbol, notes


def candle_range(candles: CandleSet) -> tuple[datetime, datetime]:
    """``[first bar open, last bar close)``: the times the candles cover."""
    frame = candles.frame
    step = candles.interval if candles.interval is not None else frame.index[-1] - frame.index[-2]
    return frame.index[0].to_pydatetime(), (frame.index[-1] + step).to_pydatetime()


def _summary(values: Any) -> dict[str, float | None]:
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"median": None, "p10": None, "p90": None, "mean": None}
    mean = float(v.mean())  # before the percentiles reorder v in place
    p10, median, p90 = np.percentile(v, [10, 50, 90], overwrite_input=True)
    return {"median": median, "p10": p10, "p90": p90, "mean": mean}


def _threshold_summary(vol_bps: Any, volatility: Any, starts: Any) -> tuple[dict[str, Any], Any]:
    """The switches' share of time, firings and first firing; each segment starts off."""
    import numpy as np

    from stagectl.domain.regimes import threshold_states
    from stagectl.domain.segments import per_segment

    states = per_segment(
        vol_bps,
        starts,
        lambda part: threshold_states(
            part,
            low_vol_pause_bps=volatility.low_vol_pause_bps,
            low_vol_resume_bps=volatility.low_vol_resume_bps,
            regime_switch_bps=volatility.regime_switch_bps,
            high_vol_pause_bps=volatility.high_vol_pause_bps,
        ),
    )
    out: dict[str, Any] = {}
    for signal in states.columns:
        on = states[signal].to_numpy()
        before = np.concatenate(([False], on[:-1]))
        before[starts] = False
        first = states.index[int(on.argmax())] if on.any() else None
        out[signal] = {
            "share_on": float(on.mean()),
            "times_fired": int((on & ~before).sum()),
            "first_fired": first,
        }
    return {"summary_bps": _summary(vol_bps), "switches": out}, states


def _candle_side(candles: CandleSet, config: Any) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """The per-bar analysis and its summary; also the threshold states per measure.

    Every windowed indicator runs on each segment alone (``domain.segments.per_segment``):
    after a gap it warms up again instead of bridging the gap."""
    import numpy as np
    import pandas as pd

    from stagectl.data.segments import interval_text
    from stagectl.domain.indicators import ema_volatility_bps, external_volatility_bps
    from stagectl.domain.regimes import REGIME_LABELS, regime_codes, regime_inputs
    from stagectl.domain.segments import per_segment

    ra, vol = config.regime_analysis, config.volatility
    frame, starts = candles.frame, candles.starts
    inputs = per_segment(
        frame,
        starts,
        lambda part: regime_inputs(
            part,
            adx_period=ra.adx_period,
            volume_median_window_bars=ra.volume_median_window_bars,
        ),
    )
    codes = regime_codes(
        inputs["adx"],
        inputs["volatility_pct"],
        inputs["trend_return"],
        inputs["volume_ratio"],
        rules=_regime_rules(ra),
    )
    # the per-bar table's columns, gathered to build it once without copies; the labels from
    # an object array: pandas makes its string column of it ~5x faster than of numpy's
    # fixed-width strings
    columns: dict[str, Any] = {name: inputs[name].to_numpy() for name in inputs.columns}
    columns["regime"] = np.asarray(REGIME_LABELS, dtype=object)[codes]
    close = frame["close"].astype(float)
    window = int(vol.external_window_min)
    measures = {
        f"external_{window}m": per_segment(
            close, starts, lambda part: external_volatility_bps(part, window)
        )
    }
    for half_life in (vol.ema_half_life_s, vol.ema_half_life_alt_s):
        measures[f"internal_ema_{half_life:g}s"] = per_segment(
            close, starts, partial(ema_volatility_bps, half_life_s=half_life)
        )
    volatility: dict[str, Any] = {}
    states: dict[str, Any] = {}
    for name, series in measures.items():
        columns[f"vol_{name}_bps"] = series.to_numpy()
        volatility[name], states[name] = _threshold_summary(series, vol, starts)
    bars = pd.DataFrame(columns, index=frame.index, copy=False)
    counts = np.bincount(codes, minlength=len(REGIME_LABELS))
    share = {label: counts[k] / len(codes) for k, label in enumerate(REGIME_LABELS) if counts[k]}
    adx = bars["adx"]
    document = {
        "bars": len(bars),
        "first_bar": frame.index[0],
        "last_bar": frame.index[-1],
        "interval": None if candles.interval is None else interval_text(candles.interval),
        "segments": candles.segments,
        "gaps": [
            {
                "last_bar_before": gap.last_before,
                "first_bar_after": gap.first_after,
                "missing_bars": gap.missing_bars,
            }
            for gap in candles.gaps
        ],
        "regime_share_of_time": {k: float(share[k]) for k in sorted(share)},
        "adx": {
            **_summary(adx),
            "share_above_trend_min": float((adx > ra.trend_adx_min).mean()),
            "share_below_range_max": float((adx < ra.range_adx_max).mean()),
        },
        "volatility": volatility,
        "volatility_note": (
            "internal EMA volatility computed on 1-minute closes; the bot's internal measure "
            "runs on ticks, so on bars it tracks the last minute's move"
        ),
    }
    return document, bars, states


def _regime_rules(ra: Any) -> Any:
    from stagectl.domain.regimes import RegimeRules

    return RegimeRules(
        trend_adx_min=ra.trend_adx_min,
        range_adx_max=ra.range_adx_max,
        range_vol_min_pct=ra.range_vol_min_pct,
        range_vol_max_pct=ra.range_vol_max_pct,
        panic_vol_min_pct=ra.panic_vol_min_pct,
        illiquid_volume_ratio_max_pct=ra.illiquid_volume_ratio_max_pct,
        illiquid_spread_min_bps=ra.illiquid_spread_min_bps,
    )


def _read_windows_csv(path: Path) -> Any:
    """A PnL-window CSV as written by ``metrics export-windows``."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read as CSV: {error}", where=str(path)) from None
    missing = [c for c in WINDOW_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}", where=f"{path}:1")
    for column in ("window_start", "window_end"):
        parsed = pd.to_datetime(table[column], utc=True, format="ISO8601", errors="coerce")
        if parsed.isna().any():
            row = int(parsed.isna().to_numpy().argmax())
            raise InputError(f"{column}: not an ISO-8601 time", where=f"{path}:{row + 2}")
        table[column] = parsed
    for column in ("realized_fifo_quote", "inventory_delta_base"):
        values = pd.to_numeric(table[column], errors="coerce")
        if values.isna().any():
            row = int(values.isna().to_numpy().argmax())
            raise InputError(f"{column}: not a number", where=f"{path}:{row + 2}")
        table[column] = values
    return table


def _ledger_windows(
    state_path: StateLocation, symbol: str, window_s: float, candles: CandleSet
) -> Any:
    """PnL windows of ``symbol``'s fills inside the candles' time range, or None without a
    ledger or such fills."""
    from stagectl.services.ledger.reads import open_ledger
    from stagectl.state.ledger_reads import snapshot

    if not state_exists(state_path):
        return None
    with open_ledger(state_path) as db, snapshot(db):
        return ledger_windows(db, symbol, window_s, candles)


def ledger_windows(db: StateDB, symbol: str, window_s: float, candles: CandleSet) -> Any:
    """The windows over the fills of ``symbol`` inside ``candle_range(candles)`` (None
    without any): from the first such fill's window to the last one's. Every read walks the
    ``(symbol, ts)`` index over that range (the lots carried in come from the ledger's
    running totals), so fills of other symbols or other times cost nothing."""
    from stagectl.services.ledger import export_windows as export
    from stagectl.services.ledger.reads import fill_span

    first, end = candle_range(candles)
    span = fill_span(db, symbol, between=(first, end))
    if span is None:
        return None
    request = export.ExportRequest(
        window_s=window_s,
        symbol=symbol,
        start=export.floor_to_window(span[0], window_s),
        end=export.floor_to_window(span[1], window_s) + timedelta(seconds=window_s),
    )
    mids = export.candle_mids(candles.frame, candles.interval)
    return export.pnl_table(db, request, symbol, mids)


def _join_windows(windows: Any, candles: CandleSet, bars: Any, config: Any) -> Any:
    """Each window with its candle return, sigma, and trend/volatility/session/regime buckets.

    A window is joined only when it lies inside one segment of the candles (between the close
    of its first bar and the close of its last): one that reaches before the data, after it,
    or into a gap is counted as outside."""
    import numpy as np
    import pandas as pd

    from stagectl.domain.regimes import session_bucket, trend_bucket, volatility_bucket
    from stagectl.services.ledger.export_windows import candle_mids

    ra = config.regime_analysis
    mids = candle_mids(candles.frame, candles.interval)
    out = windows.sort_values("window_start", kind="stable").reset_index(drop=True)
    starts = pd.DatetimeIndex(out["window_start"])
    ends = pd.DatetimeIndex(out["window_end"])
    inside = _inside_one_segment(starts, ends, pd.DatetimeIndex(mids.index), candles.starts)
    out = out.loc[inside].reset_index(drop=True)
    starts, ends = starts[inside], ends[inside]
    outside = int((~inside).sum())
    if not len(out):
        return out, outside
    out["candle_return"] = mids.asof(ends).to_numpy() / mids.asof(starts).to_numpy() - 1.0
    log_ret = pd.Series(np.log(mids.to_numpy())).diff().to_numpy(copy=True)
    log_ret[candles.starts] = np.nan  # no return across a gap
    start_ns, end_ns = starts.as_unit("ns").asi8, ends.as_unit("ns").asi8
    mid_ns = pd.DatetimeIndex(mids.index).as_unit("ns").asi8
    k = np.searchsorted(start_ns, mid_ns, side="left") - 1
    within = (k >= 0) & (mid_ns <= end_ns[np.clip(k, 0, None)]) & np.isfinite(log_ret)
    sigma = pd.Series(log_ret[within]).groupby(k[within]).std(ddof=1)
    out["sigma_per_min"] = sigma.reindex(range(len(out))).to_numpy()
    regime_at = pd.Series(bars["regime"].to_numpy(), index=mids.index)
    out["trend"] = trend_bucket(out["candle_return"], ra.trend_threshold_pct)
    out["volatility"] = volatility_bucket(
        out["sigma_per_min"], ra.low_vol_sigma_per_min, ra.high_vol_percentile
    )
    out["session"] = session_bucket(
        starts, _clock(ra.ny_session_start_utc), _clock(ra.ny_session_end_utc)
    )
    regime_asof: Any = regime_at.asof(starts)
    out["regime"] = regime_asof.fillna("NEUTRAL").to_numpy()
    out["trend_x_volatility"] = out["trend"] + "/" + out["volatility"]
    return out, outside


def _inside_one_segment(starts: Any, ends: Any, closes: Any, segment_starts: Any) -> Any:
    """Whether each window ``[start, end)`` lies between the first and the last bar close of
    one segment (``closes``: the bars' close times)."""
    import numpy as np

    close_ns = closes.as_unit("ns").asi8
    first_ns = close_ns[segment_starts]
    last_ns = close_ns[np.append(segment_starts[1:], len(close_ns)) - 1]
    start_ns, end_ns = starts.as_unit("ns").asi8, ends.as_unit("ns").asi8
    segment = np.searchsorted(first_ns, start_ns, side="right") - 1
    return (segment >= 0) & (end_ns <= last_ns[np.clip(segment, 0, None)])


def _clock(value: Any) -> time:
    """maker.yaml's ``HH:MM`` UTC times as ``datetime.time``."""
    return value if isinstance(value, time) else time.fromisoformat(str(value))


def _pnl_side(joined: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from stagectl.domain.regimes import bucket_stats, inventory_correlation

    pnl = joined["realized_fifo_quote"]
    tables = {dim: bucket_stats(pnl, joined[dim]) for dim in DIMENSIONS}
    document = {
        "windows": len(joined),
        "total_realized_quote": float(pnl.sum()),
        "inventory_correlation": inventory_correlation(pnl, joined["inventory_delta_base"]),
        "buckets": {
            dim: [{"bucket": str(b), **row} for b, row in table.to_dict("index").items()]
            for dim, table in tables.items()
        },
    }
    return document, tables


def run(
    request: RegimeRequest, *, home: Home, progress: Callable[[int, int], None] | None = None
) -> RegimeResult:
    """Analyse, then write the ``--export`` files and the ``--html`` page when asked.

    ``progress(done, total)`` is told of each stage: candles read and bucketed, PnL
    windows joined, files written."""
    stage = progress or (lambda done, total: None)
    stage(0, 3)
    result = _analyse(request, home, stage)
    if request.export_dir is not None:
        result = replace(result, exported=tuple(_export(result, request.export_dir)))
    if request.html is not None:
        _write_html(result, request.html)
        result = replace(result, html=request.html)
    stage(3, 3)
    return result


def _analyse(request: RegimeRequest, home: Home, stage: Callable[[int, int], None]) -> RegimeResult:
    from stagectl.config.loader import load_maker

    config, source = load_maker(home, request.config)
    window_s = request.window_s or config.regime_analysis.window_s
    candles = load_candles(request.candles)
    symbol, notes = resolve_symbol(candles, request.symbol)
    notes += candles.notes
    candle_doc, bars, _ = _candle_side(candles, config)
    stage(1, 3)
    if request.windows_csv is not None:
        windows, origin = _read_windows_csv(request.windows_csv), str(request.windows_csv)
    else:
        windows = _ledger_windows(home.state_path, symbol, window_s, candles)
        origin = f"ledger {home.state_path}"
    document: dict[str, Any] = {
        "symbol": symbol,
        "config": source.describe(),
        "candles": {"files": [str(p) for p in request.candles], **candle_doc},
        "notes": notes,
    }
    joined: Any = None
    tables: dict[str, Any] = {}
    if windows is None or len(windows) == 0:
        document["pnl"] = {"empty": True, "source": origin, "message": "no PnL windows"}
    else:
        joined, outside = _join_windows(windows, candles, bars, config)
        pnl_doc, tables = (
            _pnl_side(joined)
            if len(joined)
            else ({"windows": 0, "message": "no PnL window inside the candle range"}, {})
        )
        document["pnl"] = {
            "empty": len(joined) == 0,
            "source": origin,
            "window_s": window_s if request.windows_csv is None else None,
            "windows_outside_candles": outside,
            **pnl_doc,
        }
    stage(2, 3)
    return RegimeResult(
        document=document,
        bars=bars,
        windows=joined,
        buckets=tables,
        candles=candles,
        adx_period=config.regime_analysis.adx_period,
    )


def _write_html(result: RegimeResult, path: Path) -> None:
    """The page (``services.pages.ledger``), written atomically."""
    from stagectl.reports.charts import write_page
    from stagectl.services.pages.ledger import regime_analyze

    write_page(path, regime_analyze(result))


def _export(result: RegimeResult, directory: Path) -> list[Path]:
    """regimes.csv (timestamp, adx, plus_di, minus_di, regime), the bucket tables and the
    joined windows into ``directory``."""
    import pandas as pd

    from stagectl.domain.indicators import adx
    from stagectl.domain.segments import per_segment
    from stagectl.reports.io import write_atomic

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create: {error.strerror}", where=str(directory)) from None
    written = []
    bars = result.bars
    frame = pd.DataFrame({"adx": bars["adx"]}, index=bars.index)
    candles = result.candles
    di = per_segment(
        candles.frame,
        candles.starts,
        lambda part: adx(part["high"], part["low"], part["close"], result.adx_period),
    )
    frame["plus_di"], frame["minus_di"] = di["plus_di"], di["minus_di"]
    frame["regime"] = bars["regime"]
    frame.index.name = "timestamp"
    tables = {"regimes.csv": frame.reset_index()}
    for dim, table in result.buckets.items():
        tables[f"buckets_{dim}.csv"] = table.rename_axis("bucket").reset_index()
    if result.windows is not None:
        tables["windows.csv"] = result.windows
    for name, table in tables.items():
        path = directory / name
        text = table.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ", float_format="%.10g")
        write_atomic(path, text.encode())
        written.append(path)
    return written
