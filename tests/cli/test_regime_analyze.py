"""stagectl regime-analyze on a 3-day slice of the real SOLUSDT 1-minute data."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA, Run

SOL_1M = SHARED_DATA / "binance_perp_SOLUSDT_1m_ohlcv_2025-05.csv.gz"
pytestmark = pytest.mark.skipif(not SOL_1M.is_file(), reason="shared SOL 1m data not present")


@pytest.fixture(scope="module")
def candles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 days (4,320 bars) of real SOLUSDT perp 1-minute candles from 2025-05-05."""
    path = tmp_path_factory.mktemp("sol") / "binance_perp_SOLUSDT_1m_ohlcv.csv.gz"
    with gzip.open(SOL_1M, "rt") as source:
        lines = source.readlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("2025-05-05T00:00:00"))
    with gzip.open(path, "wt") as out:
        out.write(lines[0] + "".join(lines[start : start + 4320]))
    return path


def _ledger(tmp_path: Path) -> Path:
    """A maker's fills over the slice, two per 5 minutes, at a real-looking price."""
    rows = ["timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity"]
    for k in range(600):
        minute = 1440 + k * 2
        stamp = f"2025-05-06T{minute // 60 % 24:02d}:{minute % 60:02d}:30Z".replace(
            "2025-05-06", f"2025-05-{6 + minute // 1440 - 1:02d}"
        )
        side = "buy" if k % 3 else "sell"
        price = 170 + (k % 7) * 0.05
        rows.append(f"{stamp},{k},SOLUSDT,{side},{price:.2f},0.1,-0.0003,USDT,maker")
    path = tmp_path / "fills.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_candle_side_is_reported_when_there_are_no_pnl_windows(run: Run, candles: Path) -> None:
    result = run(["regime-analyze", "--candles", candles, "--json"])
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert document["candles"]["bars"] == 4320
    shares = document["candles"]["regime_share_of_time"]
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    assert set(shares) <= {"TREND", "RANGE", "PANIC", "ILLIQUID", "NEUTRAL"}
    volatility = document["candles"]["volatility"]
    assert set(volatility) == {"external_60m", "internal_ema_35s", "internal_ema_45s"}
    assert set(volatility["external_60m"]["switches"]) == {
        "low_vol_pause",
        "defensive",
        "high_vol_pause",
    }
    assert document["pnl"]["empty"] is True


def test_human_output_says_the_pnl_side_is_empty(run: Run, candles: Path) -> None:
    result = run(["regime-analyze", "--candles", candles])
    assert result.exit_code == 0
    assert "PnL side empty" in result.stdout


def test_ledger_windows_are_bucketed_and_exported(run: Run, candles: Path, tmp_path: Path) -> None:
    assert run(["metrics", "import", _ledger(tmp_path)]).exit_code == 0
    out = tmp_path / "export"
    html = tmp_path / "regimes.html"
    result = run(
        ["regime-analyze", "--candles", candles, "--export", out, "--html", html, "--json"]
    )
    assert result.exit_code == 0, result.stderr
    pnl = result.json()["pnl"]
    assert pnl["empty"] is False
    assert pnl["windows"] > 200
    for dimension in ("trend", "volatility", "session", "regime", "trend_x_volatility"):
        assert sum(b["count"] for b in pnl["buckets"][dimension]) == pnl["windows"]
    total = sum(b["total_pnl"] for b in pnl["buckets"]["trend"])
    assert abs(total - pnl["total_realized_quote"]) < 1e-9
    regimes = list(csv.DictReader(io.StringIO((out / "regimes.csv").read_text())))
    assert list(regimes[0]) == ["timestamp", "adx", "plus_di", "minus_di", "regime"]
    assert len(regimes) == 4320
    assert (out / "buckets_trend_x_volatility.csv").is_file()
    page = html.read_text()
    assert page.count('class="plotly-graph-div"') == 3  # price, cumulative PnL, heat map
    assert '<script src="' not in page and "<link" not in page
    for table in ("Regime share of time", "Volatility thresholds", "By trend x volatility"):
        assert table in page


def test_windows_csv_from_export_windows_is_accepted(
    run: Run, candles: Path, tmp_path: Path
) -> None:
    run(["metrics", "import", _ledger(tmp_path)])
    windows = tmp_path / "w.csv"
    assert run(["metrics", "export-windows", "--candles", candles, "--out", windows]).exit_code == 0
    result = run(["regime-analyze", "--candles", candles, "--windows", windows, "--json"])
    assert result.exit_code == 0, result.stderr
    assert result.json()["pnl"]["source"] == str(windows)


def test_input_errors_exit_2(run: Run, candles: Path, tmp_path: Path) -> None:
    assert run(["regime-analyze"]).stderr.startswith("stagectl: --candles: ")
    assert run(["regime-analyze", "--candles", tmp_path / "none.csv"]).exit_code == 2
    bad = tmp_path / "w.csv"
    bad.write_text("window_start,window_end\n")
    result = run(["regime-analyze", "--candles", candles, "--windows", bad, "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "missing column(s)" in result.stderr
