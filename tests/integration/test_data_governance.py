"""Seed 001's data governance on real data: each rule catches a defect planted in the
bundled sample (and in ../shared/data where a rule needs finer bars; skipped without it)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stagectl.config.loader import load_config
from stagectl.config.strategy import StrategyConfig
from stagectl.data.bundled import SAMPLE_DIR
from stagectl.data.loaders import load_governed_candles
from stagectl.domain.backtest import run_backtest
from stagectl.domain.data_quality import QualityPolicy
from stagectl.services.strategy.sleeves import build_sleeves
from tests.conftest import REPO_ROOT, Run

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def sample_frame(name: str) -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DIR / name, dtype={"timestamp": str})


def write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as out:
        frame.to_csv(out, index=False)
    return path


def copy(name: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(SAMPLE_DIR / name, directory / name))


def raise_close(frame: pd.DataFrame, rows: list[int], factor: float) -> pd.DataFrame:
    """The bars at ``rows`` with close (and high, to stay a valid bar) times ``factor``."""
    out = frame.copy()
    out.loc[rows, "close"] = out.loc[rows, "close"] * factor
    out.loc[rows, "high"] = np.maximum(out.loc[rows, "high"], out.loc[rows, "close"])
    return out


ETH_PERP = "binance_perp_ETHUSDT_1h_ohlcv.csv.gz"
ETH_SPOT = "binance_spot_ETHUSDT_1h_ohlcv.csv.gz"
SOL_PERP = "binance_perp_SOLUSDT_1h_ohlcv.csv.gz"
SOL_MARK = "binance_perp_SOLUSDT_1h_mark.csv.gz"


def check(run: Run, *args: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = run(["data", "check", *args, "--json"])
    return result.exit_code, result.json() if result.exit_code in (0, 1) else {}


def dataset(document: dict, market: str, kind: str) -> dict:  # type: ignore[type-arg]
    (found,) = [d for d in document["datasets"] if (d["market"], d["kind"]) == (market, kind)]
    return found


def test_perp_vs_spot_cross_check_reports_the_planted_bars(run: Run, tmp_path: Path) -> None:
    perp = sample_frame(ETH_PERP)
    planted = [5000, 5001, 12000]
    write(raise_close(perp, planted, 1.02), tmp_path / ETH_PERP)
    copy(ETH_SPOT, tmp_path)
    code, document = check(run, "--data", tmp_path, "-s", "ETHUSDT", "--outlier-z", "1000")
    assert code == 1
    (cross,) = dataset(document, "perp", "ohlcv")["cross_checks"]
    assert cross["name"] == "perp vs spot close"
    assert cross["tolerance_bps"] == 100
    assert cross["outside"] == 3
    assert cross["first_outside"] == [perp["timestamp"][i] for i in planted]
    assert 190 < cross["worst_bps"] < 215


def test_the_real_eth_perp_and_spot_closes_agree_within_the_default(
    run: Run, tmp_path: Path
) -> None:
    copy(ETH_PERP, tmp_path / "perp")
    copy(ETH_SPOT, tmp_path / "spot")
    code, document = check(
        run, "--data", tmp_path / "perp", "--reference", tmp_path / "spot", "--outlier-z", "1000"
    )
    assert code == 0
    (cross,) = dataset(document, "perp", "ohlcv")["cross_checks"]
    assert cross["compared"] == 20803
    assert cross["outside"] == 0
    assert abs(cross["median_bps"]) < 10


def test_mark_vs_last_cross_check_reports_a_planted_mark(run: Run, tmp_path: Path) -> None:
    copy(SOL_PERP, tmp_path)
    marks = sample_frame(SOL_MARK)
    marks.loc[777, "mark_price"] *= 1.03
    write(marks, tmp_path / SOL_MARK)
    code, document = check(run, "--data", tmp_path, "--outlier-z", "1000")
    assert code == 1
    (cross,) = dataset(document, "perp", "ohlcv")["cross_checks"]
    assert cross["name"] == "mark vs last (open)"
    assert cross["outside"] == 1
    assert cross["worst_at"] == cross["first_outside"][0] == marks["timestamp"][777]
    assert 290 < cross["worst_bps"] < 320


def test_a_missing_hour_is_dropped_and_reported_never_filled(run: Run, tmp_path: Path) -> None:
    perp = sample_frame(ETH_PERP)
    write(perp.drop(index=[100, 101]), tmp_path / ETH_PERP)
    code, document = check(run, "--data", tmp_path, "--outlier-z", "1000")
    assert code == 1
    quality = dataset(document, "perp", "ohlcv")["quality"]
    assert quality["filled_bars"] == 0
    assert quality["dropped_gaps"] == [
        {
            "first_missing": perp["timestamp"][100],
            "last_missing": perp["timestamp"][101],
            "missing_bars": 2,
        }
    ]


SOL_1M = "binance_perp_SOLUSDT_1m_ohlcv_2023-07.csv.gz"


@pytest.mark.skipif(not (SHARED_DATA / SOL_1M).is_file(), reason="../shared/data is not present")
def test_real_1m_bars_fill_a_ten_minute_gap_and_drop_a_ninety_minute_one(tmp_path: Path) -> None:
    bars = pd.read_csv(SHARED_DATA / SOL_1M, dtype={"timestamp": str}, nrows=3000)
    holed = bars.drop(index=[*range(500, 510), *range(2000, 2090)])
    write(holed, tmp_path / "SOLUSDT_1m.csv.gz")
    governed = load_governed_candles("SOLUSDT", "1m", data_dir=tmp_path)
    filled, dropped = governed.report.gaps
    assert (filled.filled, filled.missing_bars) == (True, 10)
    assert (dropped.filled, dropped.missing_bars) == (False, 90)
    frame = governed.frame
    assert len(frame) == 3000 - 90
    assert frame["filled"].sum() == 10
    previous_close = bars["close"][499]
    assert (
        (frame.loc[frame["filled"], ["open", "high", "low", "close"]] == previous_close).all().all()
    )
    assert (frame.loc[frame["filled"], "volume"] == 0).all()


def test_an_off_grid_timestamp_is_snapped_and_reported(run: Run, tmp_path: Path) -> None:
    perp = sample_frame(ETH_PERP)
    perp.loc[300, "timestamp"] = perp["timestamp"][300].replace(":00:00Z", ":00:17Z")
    write(perp, tmp_path / ETH_PERP)
    code, document = check(run, "--data", tmp_path, "--outlier-z", "1000")
    assert code == 1
    quality = dataset(document, "perp", "ohlcv")["quality"]
    assert (quality["off_grid_rows"], quality["off_grid_max_offset_s"]) == (1, 17.0)
    governed = load_governed_candles("ETHUSDT", data_dir=tmp_path)
    assert pd.Timestamp(perp["timestamp"][300]).floor("h") in governed.frame.index
    assert governed.frame.index.equals(governed.frame.index.floor("h"))


def test_a_timestamp_half_an_hour_off_is_refused_as_ambiguous(run: Run, tmp_path: Path) -> None:
    perp = sample_frame(ETH_PERP)
    perp.loc[300, "timestamp"] = perp["timestamp"][300].replace(":00:00Z", ":30:00Z")
    write(perp, tmp_path / ETH_PERP)
    result = run(["data", "check", "--data", tmp_path])
    assert result.exit_code == 2
    assert "ambiguous, refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_planted_spike_is_flagged_and_its_return_clipped(run: Run, tmp_path: Path) -> None:
    perp = sample_frame(ETH_PERP)
    write(raise_close(perp, [4000], 1.25), tmp_path / ETH_PERP)
    code, document = check(run, "--data", tmp_path)
    assert code == 1
    quality = dataset(document, "perp", "ohlcv")["quality"]
    spike = perp["timestamp"][4000]
    (flag,) = [o for o in quality["outliers"] if o["timestamp"] == spike]
    assert flag["log_return"] > 0.2
    assert 0 < flag["clipped_to"] < 0.1
    assert quality["clipped"] == len(quality["outliers"])
    governed = load_governed_candles("ETHUSDT", data_dir=tmp_path, policy=QualityPolicy())
    assert governed.frame.loc[pd.Timestamp(spike), "outlier"]
    assert governed.frame.loc[pd.Timestamp(spike), "log_return"] == pytest.approx(
        flag["clipped_to"]
    )
    # the price stays as the file gives it: only the return is clipped
    assert governed.frame.loc[pd.Timestamp(spike), "close"] == pytest.approx(
        perp["close"][4000] * 1.25
    )


def test_the_universe_leaves_out_a_young_symbol_and_says_why(
    run: Run, tmp_path: Path, home: Path
) -> None:
    copy(ETH_PERP, tmp_path)
    young = sample_frame(SOL_PERP).tail(24 * 40)
    write(young, tmp_path / SOL_PERP)
    config = home / "data.yaml"
    config.write_text("universe: {min_avg_daily_volume_usd: 5000000000, min_history_days: 90}\n")
    code, document = check(run, "--data", tmp_path, "--outlier-z", "1000", "-c", config)
    assert code == 0  # out of the universe is not a data problem
    members = {m["symbol"]: m for m in document["universe"]}
    assert members["ETHUSDT"]["included"] is True
    sol = members["SOLUSDT"]
    assert sol["included"] is False
    assert sol["history_days"] == pytest.approx(40 - 1 / 24)
    assert any(r.startswith("history 40.0 days < 90 days") for r in sol["reasons_out"])
    assert any(r.startswith("average daily volume $") for r in sol["reasons_out"])
    assert document["policy"]["universe"]["min_history_days"] == 90


DELISTED_AT = "2025-11-15T10:00:00Z"


def delisted_data(directory: Path) -> Path:
    """ETH whole; SOL candles and funding cut at DELISTED_AT, as a delisting leaves them."""
    for name in (ETH_PERP, "binance_perp_ETHUSDT_8h_funding.csv.gz"):
        copy(name, directory)
    for name in (SOL_PERP, "binance_perp_SOLUSDT_8h_funding.csv.gz"):
        frame = sample_frame(name)
        write(frame[frame["timestamp"] <= DELISTED_AT], directory / name)
    return directory


def test_a_delisted_symbol_is_closed_at_its_last_bar_with_its_costs(tmp_path: Path) -> None:
    data = delisted_data(tmp_path)
    config = load_config(REPO_ROOT / "config" / "futures_alt_ensemble.yaml", StrategyConfig)
    start, end = pd.Timestamp("2025-10-01T00:00Z"), pd.Timestamp("2025-12-31T23:00Z")
    sleeves, info = build_sleeves(config, data, start.to_pydatetime(), end.to_pydatetime())
    assert info.end == end.to_pydatetime()  # ETH goes on; the window is not cut
    assert {k: v.isoformat() for k, v in info.delisted.items()} == {
        "SOLUSDT": "2025-11-15T10:00:00+00:00"
    }
    assert any("SOLUSDT data ends at 2025-11-15T10:00:00Z" in n for n in info.notes)
    result = run_backtest(sleeves, signal_delay=config.execution.signal_delay_bars)
    held = result.positions["SOLUSDT"]
    last = pd.Timestamp(DELISTED_AT)
    before = held.loc[:last].iloc[-2]
    assert before != 0  # a position was open when the data ended
    assert (held.loc[last:] == 0).all()
    assert result.sleeve_turnover.loc[last, "SOLUSDT"] == pytest.approx(abs(before))
    fee_and_slip = (
        result.sleeve_fee.loc[last, "SOLUSDT"] + result.sleeve_slippage.loc[last, "SOLUSDT"]
    )
    assert fee_and_slip > 0
    assert (result.sleeve_fee.loc[last:, "SOLUSDT"].iloc[1:] == 0).all()


def test_backtest_reports_a_delisted_symbol_and_exits_0(run: Run, tmp_path: Path) -> None:
    data = delisted_data(tmp_path / "data")
    result = run(
        ["backtest", "--data", data, "--start", "2025-10-01", "--end", "2025-12-31", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    section = result.json()["body"]["data"]
    assert section["delisted"] == {"SOLUSDT": DELISTED_AT}
    assert section["end"] == "2025-12-31T23:00:00Z"
    assert any("delisted" in note for note in section["notes"])


def test_market_intel_leaves_a_young_optional_symbol_out_of_its_universe(
    run: Run, home: Path
) -> None:
    data = home / "data"
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        copy(f"binance_perp_{symbol}_1h_ohlcv.csv.gz", data)
    xrp = "binance_perp_XRPUSDT_1h_ohlcv.csv.gz"
    write(sample_frame(xrp).tail(24 * 40), data / xrp)  # 40 days < min_history_days 90
    result = run(["market-intel", "--data", data, "--now", "2026-05-16T10:00Z", "--json"])
    assert result.exit_code == 0, result.stderr
    document = result.json()
    body = document.get("body", document)
    assert "XRPUSDT" not in {row["symbol"] for row in body["rows"]}
    members = {m["symbol"]: m for m in body["universe"]}
    assert members["XRPUSDT"]["included"] is False
    assert members["XRPUSDT"]["reasons_out"] == ["history 40.0 days < 90 days"]
    assert all(members[s]["included"] for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT"))


def test_the_backtest_grid_reports_a_symbol_outside_the_homes_universe(
    run: Run, home: Path
) -> None:
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "data.yaml").write_text("universe: {min_history_days: 1000}\n")
    grid = home / "grid.yaml"
    grid.write_text(
        "symbols: [SOLUSDT]\nperiods:\n  - {name: q1, start: 2025-01-01, end: 2025-03-31}\n"
    )
    result = run(["backtest", "--grid", grid, "--json"])
    assert result.exit_code == 0, result.stderr
    (member,) = result.json()["body"]["universe"]
    assert member["symbol"] == "SOLUSDT" and member["included"] is False
    assert member["reasons_out"] == ["history 866.4 days < 1000 days"]
    assert "SOLUSDT is outside the universe of config/data.yaml" in result.stderr
