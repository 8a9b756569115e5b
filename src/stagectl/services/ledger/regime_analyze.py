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

Entry: ``run(RegimeRequest, *, home) -> RegimeResult``; with ``export_dir`` it writes
regimes.csv, the bucket tables and the joined windows there, then with ``html`` the page,
and the result lists what it wrote (``exported``, ``html``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.errors import InputError

WINDOW_COLUMNS = ("window_start", "window_end", "realized_fifo_quote", "inventory_delta_base")
DIMENSIONS = ("trend", "volatility", "session", "regime", "trend_x_volatility")


@dataclass(frozen=True)
class RegimeRequest:
    symbol: str
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
    buckets: dict[str, Any] = field(default_factory=dict)  # dimension -> DataFrame
    candles: Any = None
    adx_period: int = 14
    exported: tuple[Path, ...] = ()  # the CSV files written into request.export_dir
    html: Path | None = None  # the page written (request.html)


def load_candles(paths: tuple[Path, ...]) -> Any:
    import pandas as pd

    from stagectl.services.ledger.export_windows import read_candles_file

    if not paths:
        raise InputError("pass --candles FILE (1-minute OHLCV CSV)", where="--candles")
    frames = [read_candles_file(p) for p in paths]
    frame = pd.concat(frames).sort_index() if len(frames) > 1 else frames[0]
    if frame.index.has_duplicates:
        raise InputError("the candle files overlap (duplicate bar times)", where="--candles")
    if len(frame) < 2:
        raise InputError("need at least two candles", where=str(paths[0]))
    return frame


def _summary(values: Any) -> dict[str, float | None]:
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"median": None, "p10": None, "p90": None, "mean": None}
    p10, median, p90 = np.percentile(v, [10, 50, 90])
    return {"median": median, "p10": p10, "p90": p90, "mean": float(v.mean())}


def _threshold_summary(vol_bps: Any, volatility: Any) -> tuple[dict[str, Any], Any]:
    from stagectl.domain.regimes import threshold_states

    states = threshold_states(
        vol_bps,
        low_vol_pause_bps=volatility.low_vol_pause_bps,
        low_vol_resume_bps=volatility.low_vol_resume_bps,
        regime_switch_bps=volatility.regime_switch_bps,
        high_vol_pause_bps=volatility.high_vol_pause_bps,
    )
    out: dict[str, Any] = {}
    for signal in states.columns:
        on = states[signal].to_numpy()
        starts = on[1:] & ~on[:-1]
        first = states.index[int(on.argmax())] if on.any() else None
        out[signal] = {
            "share_on": float(on.mean()),
            "times_fired": int(starts.sum() + bool(on[0])),
            "first_fired": first,
        }
    return {"summary_bps": _summary(vol_bps), "switches": out}, states


def _candle_side(candles: Any, config: Any) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """The per-bar analysis and its summary; also the threshold states per measure."""
    import pandas as pd

    from stagectl.domain.indicators import ema_volatility_bps, external_volatility_bps
    from stagectl.domain.regimes import classify_regimes, regime_inputs

    ra, vol = config.regime_analysis, config.volatility
    inputs = regime_inputs(
        candles, adx_period=ra.adx_period, volume_median_window_bars=ra.volume_median_window_bars
    )
    bars = inputs.copy()
    bars["regime"] = classify_regimes(
        inputs["adx"],
        inputs["volatility_pct"],
        inputs["trend_return"],
        inputs["volume_ratio"],
        rules=_regime_rules(ra),
    )
    close = candles["close"].astype(float)
    measures = {
        f"external_{int(vol.external_window_min)}m": external_volatility_bps(
            close, int(vol.external_window_min)
        )
    }
    for half_life in (vol.ema_half_life_s, vol.ema_half_life_alt_s):
        measures[f"internal_ema_{half_life:g}s"] = ema_volatility_bps(close, half_life)
    volatility: dict[str, Any] = {}
    states: dict[str, Any] = {}
    for name, series in measures.items():
        bars[f"vol_{name}_bps"] = series.to_numpy()
        volatility[name], states[name] = _threshold_summary(series, vol)
    share = pd.Series(bars["regime"]).value_counts(normalize=True).sort_index()
    adx = bars["adx"]
    document = {
        "bars": len(bars),
        "first_bar": candles.index[0],
        "last_bar": candles.index[-1],
        "regime_share_of_time": {str(k): float(v) for k, v in share.items()},
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


def _ledger_windows(state_path: Path, symbol: str, window_s: float, candles: Any) -> Any:
    """PnL windows of ``symbol`` from the ledger, or None without a ledger or fills."""
    from stagectl.services.ledger import export_windows as export

    if not state_path.is_file():
        return None
    from stagectl.services.ledger.reads import open_ledger
    from stagectl.state.ledger_reads import has_fills, snapshot

    request = export.ExportRequest(window_s=window_s, symbol=symbol)
    with open_ledger(state_path) as db, snapshot(db):
        if has_fills(db, symbol):
            return export.pnl_table(db, request, symbol, export.candle_mids(candles))
    return None


def _join_windows(windows: Any, candles: Any, bars: Any, config: Any) -> Any:
    """Each window with its candle return, sigma, and trend/volatility/session/regime buckets."""
    import numpy as np
    import pandas as pd

    from stagectl.domain.regimes import session_bucket, trend_bucket, volatility_bucket
    from stagectl.services.ledger.export_windows import candle_mids

    ra = config.regime_analysis
    mids = candle_mids(candles)
    out = windows.sort_values("window_start", kind="stable").reset_index(drop=True)
    starts = pd.DatetimeIndex(out["window_start"])
    ends = pd.DatetimeIndex(out["window_end"])
    before_data = (starts < mids.index[0]) | (ends > mids.index[-1])
    out = out.loc[~before_data].reset_index(drop=True)
    starts, ends = starts[~before_data], ends[~before_data]
    if not len(out):
        return out, int(before_data.sum())
    out["candle_return"] = mids.asof(ends).to_numpy() / mids.asof(starts).to_numpy() - 1.0
    log_ret = pd.Series(np.log(mids.to_numpy())).diff().to_numpy()
    start_ns, end_ns = starts.as_unit("ns").asi8, ends.as_unit("ns").asi8
    mid_ns = pd.DatetimeIndex(mids.index).as_unit("ns").asi8
    k = np.searchsorted(start_ns, mid_ns, side="left") - 1
    inside = (k >= 0) & (mid_ns <= end_ns[np.clip(k, 0, None)]) & np.isfinite(log_ret)
    sigma = pd.Series(log_ret[inside]).groupby(k[inside]).std(ddof=1)
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
    return out, int(before_data.sum())


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


def run(request: RegimeRequest, *, home: Home) -> RegimeResult:
    """Analyse, then write the ``--export`` files and the ``--html`` page when asked."""
    result = _analyse(request, home)
    if request.export_dir is not None:
        result = replace(result, exported=tuple(_export(result, request.export_dir)))
    if request.html is not None:
        _write_html(result, request.html)
        result = replace(result, html=request.html)
    return result


def _analyse(request: RegimeRequest, home: Home) -> RegimeResult:
    from stagectl.config.loader import load_maker

    config, source = load_maker(home, request.config)
    window_s = request.window_s or config.regime_analysis.window_s
    candles = load_candles(request.candles)
    candle_doc, bars, _ = _candle_side(candles, config)
    if request.windows_csv is not None:
        windows, origin = _read_windows_csv(request.windows_csv), str(request.windows_csv)
    else:
        windows = _ledger_windows(home.state_path, request.symbol, window_s, candles)
        origin = f"ledger {home.state_path}"
    document: dict[str, Any] = {
        "symbol": request.symbol,
        "config": source.describe(),
        "candles": {"files": [str(p) for p in request.candles], **candle_doc},
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
    return RegimeResult(
        document=document,
        bars=bars,
        windows=joined,
        buckets=tables,
        candles=candles,
        adx_period=config.regime_analysis.adx_period,
    )


def _write_html(result: RegimeResult, path: Path) -> None:
    """The self-contained page (reports.html_regimes), written atomically."""
    import json

    from stagectl.reports.html_regimes import render
    from stagectl.reports.io import write_atomic

    series: dict[str, list[Any]] | None = None
    if result.windows is not None and len(result.windows):
        w = result.windows
        series = {
            "times": [str(t) for t in w["window_start"]],
            "pnl": [float(v) for v in w["realized_fifo_quote"]],
            "regime": [str(r) for r in w["regime"]],
        }
    write_atomic(
        path, render(json.loads(json.dumps(result.document, default=str)), series).encode()
    )


def _export(result: RegimeResult, directory: Path) -> list[Path]:
    """regimes.csv (timestamp, adx, plus_di, minus_di, regime), the bucket tables and the
    joined windows into ``directory``."""
    import pandas as pd

    from stagectl.domain.indicators import adx
    from stagectl.reports.io import write_atomic

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create: {error.strerror}", where=str(directory)) from None
    written = []
    bars = result.bars
    frame = pd.DataFrame({"adx": bars["adx"]}, index=bars.index)
    candles = result.candles
    di = adx(candles["high"], candles["low"], candles["close"], result.adx_period)
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
