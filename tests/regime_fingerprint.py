"""A fingerprint of ``stagectl regime-analyze``, frozen in ``tests/data/regime_frozen.json``.

For tests only. The performance work on regime-analyze (issue 13, item 5) must not change
any result: ``tests/integration/test_regime_frozen.py`` runs the command on each case below
and compares its fingerprint to the one frozen before that work, numbers to 1e-12
(relative above 1), labels, counts and switch states exactly.

Cases: the bundled SOLUSDT hourly bars (2.4 y), the one-day 1m file in ``tests/data``, and,
when ``../shared/data`` is there, the year of real SOLUSDT 1m bars tiled as
``benchmarks/ledger.py`` builds it (525,600 bars); each with a deterministic PnL-window CSV
so the buckets are covered. Covered per case: the ``--json`` document, the human output,
the exported bucket tables and joined windows (as text), and per bar the regime labels and
the three switches of each volatility measure (digests), and every numeric column of the
bars (series prints: sums, a position-weighted sum, every 997th value). Rebuild the file
with ``python -m tests.regime_fingerprint`` only when a change of results is intended, and
say so in the commit.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stagectl.config.home import Home
from stagectl.config.loader import load_maker
from stagectl.data.bundled import SAMPLE_DIR
from stagectl.domain.regimes import threshold_states
from stagectl.domain.segments import per_segment
from stagectl.services.ledger import regime_analyze
from tests.backtest_fingerprint import _series_print
from tests.backtest_fingerprint import differences as backtest_differences
from tests.conftest import REPO_ROOT, SHARED_DATA, invoke_cli

FROZEN = Path(__file__).resolve().parent / "data" / "regime_frozen.json"
TOLERANCE = 1e-12
ONE_DAY_1M = (
    Path(__file__).resolve().parent / "data" / "binance_perp_SOLUSDT_1m_ohlcv_2025-05-07.csv.gz"
)
SHARED_1M = sorted(SHARED_DATA.glob("binance_perp_SOLUSDT_1m_ohlcv_*.csv.gz"))
YEAR_BARS = 525_600


def bundled_hourly(work: Path) -> Path:
    return SAMPLE_DIR / "binance_perp_SOLUSDT_1h_ohlcv.csv.gz"


def one_day_1m(work: Path) -> Path:
    return ONE_DAY_1M


def year_1m(work: Path) -> Path:
    """The shared real SOLUSDT 1m files tiled to a year on one minute grid (2024), as
    ``benchmarks/ledger.py``'s ``year_of_candles`` writes them."""
    path = work / "binance_perp_SOLUSDT_1m_ohlcv_year.csv.gz"
    real = pd.concat([pd.read_csv(p) for p in SHARED_1M], ignore_index=True)
    tiled = pd.concat([real] * (YEAR_BARS // len(real) + 1), ignore_index=True).iloc[:YEAR_BARS]
    tiled = tiled.copy()
    times = pd.date_range("2024-01-01", periods=YEAR_BARS, freq="1min", tz="UTC")
    tiled["timestamp"] = times.strftime("%Y-%m-%dT%H:%M:%SZ")
    with gzip.open(path, "wt") as handle:
        tiled.to_csv(handle, index=False)
    return path


CASES: dict[str, tuple[Callable[[Path], Path], int]] = {
    # name: (the candle file, the PnL windows' length in minutes)
    "bundled_1h": (bundled_hourly, 240),
    "one_day_1m": (one_day_1m, 5),
    "year_1m": (year_1m, 15),
}


def windows_csv(candles: Path, minutes: int, out: Path) -> Path:
    """Deterministic PnL windows of ``minutes`` over the candles' span, one past each end."""
    frame = pd.read_csv(candles, usecols=["timestamp"])
    first = pd.Timestamp(frame["timestamp"].iloc[0])
    last = pd.Timestamp(frame["timestamp"].iloc[-1])
    starts = pd.date_range(
        first - pd.Timedelta(minutes=minutes),
        last + pd.Timedelta(minutes=minutes),
        freq=f"{minutes}min",
    )
    rng = np.random.default_rng(5)
    pnl = np.round(rng.normal(0.0, 1.0, len(starts)), 4)
    pnl[::7] = 0.0
    table = pd.DataFrame(
        {
            "window_start": starts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "window_end": (starts + pd.Timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "realized_fifo_quote": pnl,
            "inventory_delta_base": np.round(rng.normal(0.0, 2.0, len(starts)) - pnl * 0.3, 3),
        }
    )
    path = out / "windows.csv"
    table.to_csv(path, index=False)
    return path


def _digest(values: Any) -> str:
    data = np.ascontiguousarray(np.asarray(values))
    if data.dtype == object or data.dtype.kind == "U":
        return hashlib.sha256("\n".join(map(str, data)).encode()).hexdigest()
    return hashlib.sha256(data.tobytes()).hexdigest()


def _scrub(text: str, work: Path) -> str:
    return text.replace(str(work), "<work>").replace(str(REPO_ROOT), "<repo>")


def fingerprint(case: str, work: Path) -> dict[str, Any]:
    """Run regime-analyze on ``case`` in ``work`` (an empty home there) and fingerprint it."""
    make, minutes = CASES[case]
    candles = make(work)
    windows = windows_csv(candles, minutes, work)
    home = work / "home"
    home.mkdir(exist_ok=True)
    env: dict[str, str | None] = {"STAGECTL_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "120"}
    env |= {"STAGECTL_STATE": None, "STAGECTL_DEBUG": None}
    base = ["regime-analyze", "--candles", candles, "--windows", windows]
    export = work / "export"
    as_json = invoke_cli([*base, "--json", "--export", export], env=env)
    as_text = invoke_cli(base, env=env)
    if as_json.exit_code or as_text.exit_code:
        raise AssertionError(as_json.stderr + as_text.stderr)
    exported = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(export.iterdir())
    }
    request = regime_analyze.RegimeRequest(symbol=None, candles=(candles,))
    result = regime_analyze.run(request, home=Home.resolve(home))
    bars = result.bars
    config, _ = load_maker(Home.resolve(home), None)
    vol = config.volatility
    switches = {}
    for column in [c for c in bars.columns if c.startswith("vol_")]:
        states = per_segment(
            pd.Series(bars[column].to_numpy(), index=bars.index),
            result.candles.starts,
            lambda part: threshold_states(
                part,
                low_vol_pause_bps=vol.low_vol_pause_bps,
                low_vol_resume_bps=vol.low_vol_resume_bps,
                regime_switch_bps=vol.regime_switch_bps,
                high_vol_pause_bps=vol.high_vol_pause_bps,
            ),
        )
        switches[column] = {name: _digest(states[name].to_numpy()) for name in states.columns}
    return {
        "json": json.loads(_scrub(as_json.stdout, work)),
        "text": _scrub(as_text.stdout, work).splitlines(),
        "exported": exported,
        "regimes": _digest(bars["regime"].to_numpy()),
        "switches": switches,
        "bars": {
            column: _series_print(bars[column].to_numpy(dtype=float))
            for column in bars.columns
            if column != "regime"
        },
    }


def available(case: str) -> bool:
    return case != "year_1m" or bool(SHARED_1M)


def differences(actual: Any, expected: Any) -> list[str]:
    return backtest_differences(actual, expected, tolerance=TOLERANCE)


def main() -> None:
    import tempfile

    frozen = {}
    for case in CASES:
        if not available(case):
            raise SystemExit(f"{case}: needs the shared 1m data in {SHARED_DATA}")
        with tempfile.TemporaryDirectory() as tmp:
            frozen[case] = fingerprint(case, Path(tmp))
    FROZEN.write_text(json.dumps(frozen, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FROZEN}")


if __name__ == "__main__":
    main()
