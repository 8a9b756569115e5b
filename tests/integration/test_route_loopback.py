"""stagectl route --exchange against two loopback exchanges with different books, fees
and latency: it picks the better venue, changes its pick when the books change, and
scores out a venue it cannot reach (127.0.0.1 only)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import Run
from tests.exchange_sim import READ_KEY, READ_SECRET, ExchangeSim, running_sim

START = datetime(2024, 1, 3, tzinfo=UTC)
DEPTH = "/fapi/v1/depth"
TIGHT = ([("2300.00", "40"), ("2299.90", "40")], [("2300.10", "40"), ("2300.20", "40")])
WIDE = ([("2298.00", "0.5"), ("2297.00", "0.5")], [("2302.00", "0.5"), ("2303.00", "0.5")])


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[ExchangeSim, ExchangeSim]]:
    with running_sim() as a, running_sim() as b:
        yield a, b


@pytest.fixture
def venues(sims: tuple[ExchangeSim, ExchangeSim]) -> tuple[ExchangeSim, ExchangeSim]:
    for sim in sims:
        sim.reset(now=START)
    return sims


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _route(run: Run, spec: str, *extra: str) -> Any:
    args = ["route", "--symbol", "ETHUSDT", "--side", "buy", "--notional", "5000"]
    return run([*args, "--exchange", spec, *extra])


def _spec(a: ExchangeSim, b: ExchangeSim) -> str:
    return f"a=binanceusdm@{a.base_url},b=binanceusdm@{b.base_url}"


def test_the_better_book_wins_and_the_pick_follows_the_books(
    run: Run, venues: tuple[ExchangeSim, ExchangeSim]
) -> None:
    a, b = venues
    a.set_book("ETHUSDT", *TIGHT)
    b.set_book("ETHUSDT", *WIDE)
    first = _route(run, _spec(a, b), "--json")
    assert first.exit_code == 0, first.stderr
    doc = first.json()
    assert doc["chosen"] == "a"
    assert [s["venue"] for s in doc["scores"]] == ["a", "b"]
    assert doc["scores"][1]["spread_bps"] == pytest.approx(4 / 2300 * 10_000)
    assert doc["style"]["style"] == "limit"  # a's spread (0.43 bps), not b's 17 bps
    assert all(
        s["reliability_basis"] == "probes: 3/3 book requests answered" for s in doc["scores"]
    )
    assert len(a.requests(DEPTH)) == len(b.requests(DEPTH)) == 3

    a.set_book("ETHUSDT", *WIDE)
    b.set_book("ETHUSDT", *TIGHT)
    second = _route(run, _spec(a, b), "--json").json()
    assert second["chosen"] == "b"


def test_account_fees_and_measured_latency_enter_the_scores(
    run: Run, venues: tuple[ExchangeSim, ExchangeSim], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = venues
    for sim in venues:
        sim.set_book("ETHUSDT", *TIGHT)
    monkeypatch.setenv("STAGECTL_READONLY_API_KEY", READ_KEY)
    monkeypatch.setenv("STAGECTL_READONLY_API_SECRET", READ_SECRET)
    b.set_commission(maker="0.000200", taker="0.001000")  # 10 bps taker
    b.inject_latency(0.25, count=3, path=DEPTH)
    doc = _route(run, _spec(a, b), "--json").json()
    scores = {s["venue"]: s for s in doc["scores"]}
    assert doc["chosen"] == "a"
    assert scores["b"]["source"] == "binanceusdm (fees: account)"
    assert scores["a"]["crossing_cost_bps"] == pytest.approx(0.1 / 2300.05 * 10_000 / 2 + 4)
    assert scores["b"]["crossing_cost_bps"] == pytest.approx(0.1 / 2300.05 * 10_000 / 2 + 10)
    assert scores["b"]["latency_ms"] >= 250
    assert scores["b"]["sub_scores"]["latency"] <= 0.75


def test_an_unreachable_venue_is_scored_out_and_none_reachable_is_exit_3(
    run: Run, venues: tuple[ExchangeSim, ExchangeSim]
) -> None:
    a, _ = venues
    a.set_book("ETHUSDT", *TIGHT)
    down = f"c=binanceusdm@http://127.0.0.1:{_closed_port()}"
    mixed = _route(run, f"a=binanceusdm@{a.base_url},{down}", "--json")
    assert mixed.exit_code == 0, mixed.stderr
    doc = mixed.json()
    assert doc["chosen"] == "a"
    assert doc["scores"][1]["venue"] == "c"
    assert doc["scores"][1]["excluded"].startswith("unreachable: ")
    only_down = _route(run, down)
    assert only_down.exit_code == 3
    assert "no venue reachable" in only_down.stderr
    assert len(only_down.stderr.strip().splitlines()) == 1


def test_a_venue_without_the_symbol_is_named(
    run: Run, venues: tuple[ExchangeSim, ExchangeSim]
) -> None:
    a, _ = venues
    args = ["route", "--symbol", "BTCUSDT", "--side", "sell", "--notional", "100"]
    result = run([*args, "--exchange", f"a=binanceusdm@{a.base_url}"])
    assert result.exit_code == 2
    assert "a: does not list BTCUSDT" in result.stderr
