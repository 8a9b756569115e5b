"""``stagectl data fetch`` through real ccxt against the loopback exchange simulator."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from stagectl.data import load_candles, load_funding
from tests.conftest import CliResult, Run
from tests.exchange_sim import ExchangeSim, running_sim

KLINES = "/fapi/v1/klines"
SINCE = "2024-01-01"
CLOCK = "2024-01-03T00:30:00Z"  # 48 whole bars since SINCE; the 00:00 bar is in progress


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return load_candles("ETHUSDT").loc[:"2024-03-01"]


@pytest.fixture
def sim(candles: pd.DataFrame) -> Iterator[ExchangeSim]:
    funding = load_funding("ETHUSDT").loc[:"2024-03-01"]
    with running_sim(
        candles={"ETHUSDT": candles}, funding={"ETHUSDT": funding}, start=CLOCK
    ) as running:
        yield running


def fetch(run: Run, sim_or_url: ExchangeSim | str, *extra: str) -> CliResult:
    url = sim_or_url if isinstance(sim_or_url, str) else sim_or_url.base_url
    return run(
        [
            "data",
            "fetch",
            "--symbol",
            "ETH/USDT:USDT",
            "--timeframe",
            "1h",
            "--since",
            SINCE,
            "--base-url",
            url,
            "--json",
            *extra,
        ]
    )


def test_fetch_caches_whole_bars_and_funding_loadable_by_the_data_loaders(
    run: Run, home: Path, sim: ExchangeSim, candles: pd.DataFrame
) -> None:
    result = fetch(run, sim)
    assert result.exit_code == 0, result.stderr
    document = result.json()
    ohlcv, funding = document["series"]
    assert (ohlcv["rows"], ohlcv["new_rows"]) == (48, 48)
    assert ohlcv["last"] == "2024-01-02T23:00:00Z"
    cache = home / "data" / "binanceusdm"
    assert Path(ohlcv["path"]) == cache / "ETHUSDT_1h.csv.gz"
    cached = load_candles("ETHUSDT", "1h", data_dir=cache)
    pd.testing.assert_frame_equal(cached, candles.loc[:"2024-01-02T23:00"], check_freq=False)
    rates = load_funding("ETHUSDT", data_dir=cache)
    assert funding["rows"] == len(rates) == 7  # 2024-01-01T00:00 .. 2024-01-03T00:00, every 8h
    assert [p.name for p in cache.iterdir()] != [] and not list(cache.glob(".*"))


def test_second_fetch_asks_only_for_bars_after_the_cache(run: Run, sim: ExchangeSim) -> None:
    assert fetch(run, sim).exit_code == 0
    first_run_requests = len(sim.requests(KLINES))
    sim.advance(bars=5)
    second = fetch(run, sim)
    assert second.exit_code == 0, second.stderr
    ohlcv = second.json()["series"][0]
    assert (ohlcv["rows"], ohlcv["new_rows"]) == (53, 5)
    new_requests = sim.requests(KLINES)[first_run_requests:]
    assert len(new_requests) == 1
    last_cached_ms = int(pd.Timestamp("2024-01-02T23:00Z").value // 1_000_000)
    assert int(new_requests[0].params["startTime"]) == last_cached_ms + 1


def test_fetch_with_nothing_new_writes_nothing(run: Run, home: Path, sim: ExchangeSim) -> None:
    assert fetch(run, sim).exit_code == 0
    path = home / "data" / "binanceusdm" / "ETHUSDT_1h.csv.gz"
    before = path.stat().st_mtime_ns
    again = fetch(run, sim)
    assert again.exit_code == 0
    assert again.json()["series"][0]["new_rows"] == 0
    assert path.stat().st_mtime_ns == before


def test_fetch_pages_through_a_range_longer_than_one_page(run: Run, sim: ExchangeSim) -> None:
    sim.advance(bars=1000)
    result = fetch(run, sim)
    assert result.exit_code == 0
    assert result.json()["series"][0]["rows"] == 48 + 1000
    assert len(sim.requests(KLINES)) == 2  # 1000 bars, then the 48 left


def test_unreachable_exchange_exits_3_with_one_line(run: Run) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = fetch(run, url)
    assert result.exit_code == 3
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stagectl: binanceusdm")


def test_unknown_symbol_is_a_usage_error(run: Run, sim: ExchangeSim) -> None:
    result = run(
        ["data", "fetch", "--symbol", "DOGEUSDT", "--since", SINCE, "--base-url", sim.base_url]
    )
    assert result.exit_code == 2
    assert "DOGEUSDT" in result.stderr


def test_bad_since_is_a_usage_error(run: Run) -> None:
    result = run(["data", "fetch", "--symbol", "ETHUSDT", "--since", "yesterday"])
    assert result.exit_code == 2
    assert result.stderr.startswith("stagectl: --since: 'yesterday' is not a date (YYYY-MM-DD)")
