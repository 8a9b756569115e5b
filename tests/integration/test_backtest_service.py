"""The backtest service on the bundled ETH/SOL perp data, checked against its own exports."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stagectl.cli._common import parse_utc
from stagectl.config.home import Home
from stagectl.config.loader import load_strategy
from stagectl.data.bundled import SAMPLE_DIR
from stagectl.errors import InputError
from stagectl.services.research import backtest as service
from stagectl.services.strategy.sleeves import build_sleeves

YEAR_2025 = {
    "start": parse_utc("2025-01-01", option="--start"),
    "end": parse_utc("2025-12-31", option="--end", end_of_day=True),
}


@pytest.fixture(scope="module")
def home_dir(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return Home.resolve(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def year_2025(home_dir: Home, tmp_path_factory: pytest.TempPathFactory) -> service.BacktestRun:
    """The 2025 backtest, with its equity.csv and trades.csv exported."""
    export = tmp_path_factory.mktemp("export")
    return service.run(service.BacktestRequest(**YEAR_2025, export_dir=export), home=home_dir)


def _exported(backtest: service.BacktestRun, name: str) -> pd.DataFrame:
    path = next(p for p in backtest.exported if p.name == name)
    return pd.read_csv(path)


def test_metrics_agree_with_an_independent_computation_from_the_exported_equity(
    year_2025: service.BacktestRun,
) -> None:
    exported = _exported(year_2025, "equity.csv")
    initial = year_2025.strategy.initial_equity_usd
    equity = pd.concat([pd.Series([initial]), exported["equity"]], ignore_index=True)
    returns = equity.pct_change().dropna()
    metrics = year_2025.metrics
    assert metrics["sharpe_net"] == pytest.approx(
        returns.mean() / returns.std(ddof=1) * math.sqrt(8760), rel=1e-9
    )
    assert metrics["max_drawdown"] == pytest.approx((1 - equity / equity.cummax()).max())
    assert metrics["total_return"] == pytest.approx(equity.iloc[-1] / initial - 1)
    assert metrics["annualisation"] == "sqrt(8760) for 1h bars"


def test_exported_sleeve_equity_and_trades_add_up_to_the_portfolio(
    year_2025: service.BacktestRun,
) -> None:
    equity = _exported(year_2025, "equity.csv")
    trades = _exported(year_2025, "trades.csv")
    assert list(equity.columns) == ["timestamp", "equity", "ETHUSDT_equity", "SOLUSDT_equity"]
    assert equity["timestamp"].iloc[0] == "2025-01-01T00:00:00Z"
    initial = year_2025.strategy.initial_equity_usd
    assert trades["pnl"].sum() == pytest.approx(equity["equity"].iloc[-1] - initial, rel=1e-9)
    assert set(trades["symbol"]) == {"ETHUSDT", "SOLUSDT"}
    assert len(trades) == year_2025.metrics["trades"]


def test_the_default_window_is_cut_to_the_overlap_of_eth_and_sol(home_dir: Home) -> None:
    config, _ = load_strategy(home_dir)
    _, info = build_sleeves(config, None, parse_utc("2026-05-01", option="--start"), None)
    assert info.cut_to_overlap
    # SOL's bundled candles end before ETH's: the common index ends with SOL's
    assert info.end == pd.Timestamp("2026-05-16T10:00Z").to_pydatetime()


def test_start_and_end_cut_the_window_and_a_date_end_includes_that_day(
    year_2025: service.BacktestRun,
) -> None:
    index = year_2025.result.equity.index
    assert index[0] == pd.Timestamp("2025-01-01T00:00Z")
    assert index[-1] == pd.Timestamp("2025-12-31T23:00Z")
    assert year_2025.info.bars == 365 * 24
    # both sleeves have every bar of 2025, so the overlap did not cut this window
    assert not year_2025.info.cut_to_overlap


def test_data_before_start_warms_the_signal_so_targets_match_the_full_history(
    home_dir: Home,
) -> None:
    config, _ = load_strategy(home_dir)
    start = parse_utc("2025-03-01", option="--start")
    end = parse_utc("2025-03-31", option="--end", end_of_day=True)
    cut, info = build_sleeves(config, None, start, end)
    full, _ = build_sleeves(config, None, None, end)
    assert info.warmup_bars_used >= info.warmup_bars_needed
    for window_sleeve, full_sleeve in zip(cut, full, strict=True):
        expected = full_sleeve.target.loc[window_sleeve.target.index]
        pd.testing.assert_series_equal(window_sleeve.target, expected)
    # SOL's single EMA is warm on the first bar, so its first target is a position
    sol = next(sleeve for sleeve in cut if sleeve.symbol == "SOLUSDT")
    assert sol.target.iloc[0] in (-1.0, 1.0)


def test_symbol_backtests_one_sleeve_at_full_weight(
    home_dir: Home, year_2025: service.BacktestRun
) -> None:
    alone = service.run(service.BacktestRequest(symbol="SOLUSDT", **YEAR_2025), home=home_dir)
    assert alone.info.weights == {"SOLUSDT": 1.0}
    assert alone.info.single_symbol
    # the same sleeve as in the portfolio: its standalone curve scaled to full weight
    in_portfolio = year_2025.result.sleeve_equity["SOLUSDT"] / year_2025.result.weights["SOLUSDT"]
    np.testing.assert_allclose(alone.result.equity.to_numpy(), in_portfolio.to_numpy(), rtol=1e-12)


def test_cost_multiplier_lowers_net_sharpe_and_keeps_gross(
    home_dir: Home, year_2025: service.BacktestRun
) -> None:
    stressed = service.run(service.BacktestRequest(cost_multiplier=1.5, **YEAR_2025), home=home_dir)
    assert stressed.metrics["sharpe_net"] < year_2025.metrics["sharpe_net"]
    assert stressed.metrics["sharpe_gross"] == pytest.approx(year_2025.metrics["sharpe_gross"])
    assert stressed.metrics["fee"] > year_2025.metrics["fee"]
    assert stressed.body()["strategy"]["costs"]["effective_fee_bps"] == pytest.approx(7.5)


def test_a_data_directory_without_funding_is_refused_while_funding_is_enabled(
    home_dir: Home, tmp_path: Path
) -> None:
    for name in ("binance_perp_ETHUSDT_1h_ohlcv.csv.gz", "binance_perp_SOLUSDT_1h_ohlcv.csv.gz"):
        shutil.copy(SAMPLE_DIR / name, tmp_path / name)
    request = service.BacktestRequest(data_dir=tmp_path, **YEAR_2025)
    with pytest.raises(InputError, match="funding is enabled"):
        service.run(request, home=home_dir)


def test_a_data_directory_gives_the_same_result_as_the_bundled_files(
    home_dir: Home, tmp_path: Path, year_2025: service.BacktestRun
) -> None:
    for path in SAMPLE_DIR.glob("binance_perp_*USDT_*.csv.gz"):
        if path.name.split("_")[2] in ("ETHUSDT", "SOLUSDT"):
            shutil.copy(path, tmp_path / path.name)
    from_dir = service.run(service.BacktestRequest(data_dir=tmp_path, **YEAR_2025), home=home_dir)
    assert from_dir.metrics["sharpe_net"] == year_2025.metrics["sharpe_net"]
    assert from_dir.body()["data"]["source"] == str(tmp_path)
