"""Venue scoring (domain/venues.py): hand-computed scores, monotone sub-scores, exclusions."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagectl.domain.types import Side
from stagectl.domain.venues import (
    BookLevel,
    ScoreScales,
    VenueQuote,
    fillable_within,
    latency_score,
    queue_score,
    score_venues,
    size_score,
    spread_score,
)

D = Decimal


def _quote(venue: str = "a", **changes: object) -> VenueQuote:
    quote = VenueQuote(
        venue=venue,
        symbol="BTCUSDT",
        bids=(BookLevel(D("99.95"), D("5")), BookLevel(D("99.90"), D("7"))),
        asks=(
            BookLevel(D("100.05"), D("1")),
            BookLevel(D("100.10"), D("2")),
            BookLevel(D("100.20"), D("10")),
        ),
        taker_fee=D("0.0004"),
        maker_fee=D("0.0002"),
        latency_ms=200.0,
        reliability=0.9,
    )
    return replace(quote, **changes)  # type: ignore[arg-type]


def test_a_hand_computed_buy_score() -> None:
    # mid 100, spread 10 bps; a $500 buy is 5 units.
    (score,) = score_venues([_quote()], Side.BUY, D("500"))
    subs = score.sub_scores
    assert subs is not None and score.score is not None
    assert score.spread_bps == pytest.approx(10.0)
    assert score.crossing_cost_bps == pytest.approx(9.0)  # 5 half-spread + 4 fee
    assert subs.spread == pytest.approx(0.55)  # 1 - 9/20
    assert subs.queue == pytest.approx(0.5)  # 5 / (5 + 5 at the best bid)
    assert subs.latency == pytest.approx(0.8)  # 1 - 200/1000
    assert subs.reliability == pytest.approx(0.9)
    assert subs.size == pytest.approx(0.6)  # 1 + 2 within 10 bps of 100.05, of 5
    # 0.3*0.55 + 0.2*0.5 + 0.2*0.8 + 0.15*0.9 + 0.15*0.6
    assert score.score == pytest.approx(0.65)


def test_a_hand_computed_sell_score_reads_the_other_side() -> None:
    (score,) = score_venues([_quote()], Side.SELL, D("500"))
    subs = score.sub_scores
    assert subs is not None
    assert subs.queue == pytest.approx(5 / 6)  # 5 / (5 + 1 at the best ask)
    assert subs.size == pytest.approx(1.0)  # 5 + 7 bids within 10 bps of 99.95
    assert score.score == pytest.approx(0.165 + 0.2 * 5 / 6 + 0.16 + 0.135 + 0.15)


def test_best_first_ties_by_name_and_excluded_last_with_reasons() -> None:
    scores = score_venues(
        [
            _quote("zeta"),
            _quote("alpha"),
            _quote("delisted", lists_symbol=False),
            _quote("down", unavailable="unreachable: timed out"),
            _quote("onesided", asks=()),
            _quote("fast", latency_ms=10.0),
        ],
        Side.BUY,
        D("500"),
    )
    assert [s.venue for s in scores] == ["fast", "alpha", "zeta", "delisted", "down", "onesided"]
    reasons = {s.venue: s.excluded for s in scores}
    assert reasons["delisted"] == "does not list BTCUSDT"
    assert reasons["down"] == "unreachable: timed out"
    assert reasons["onesided"] == "book has no asks: spread unknown"
    assert all(s.score is None for s in scores[3:])


def test_a_non_positive_notional_is_refused() -> None:
    with pytest.raises(ValueError, match="notional"):
        score_venues([_quote()], Side.BUY, D("0"))


def test_an_unmeasured_latency_scores_neutral() -> None:
    assert latency_score(None) == ScoreScales().unknown_latency_score


_cost = st.floats(min_value=0, max_value=100, allow_nan=False)
_qty = st.decimals(min_value=D("0.001"), max_value=D("1000"), places=3)


@given(_cost, _cost)
def test_spread_score_falls_as_the_crossing_cost_grows(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert 0.0 <= spread_score(high) <= spread_score(low) <= 1.0


@given(_qty, _qty, _qty)
def test_queue_score_falls_as_the_queue_ahead_grows(order: D, a: D, b: D) -> None:
    low, high = sorted((a, b))
    assert 0.0 <= queue_score(order, high) <= queue_score(order, low) <= 1.0


@given(_cost, _cost)
def test_latency_score_falls_as_latency_grows(a: float, b: float) -> None:
    low, high = sorted((a * 20, b * 20))
    assert 0.0 <= latency_score(high) <= latency_score(low) <= 1.0


@given(_qty, _qty, _qty)
def test_size_score_grows_with_the_fillable_depth(order: D, a: D, b: D) -> None:
    low, high = sorted((a, b))
    assert 0.0 <= size_score(order, low) <= size_score(order, high) <= 1.0


@given(st.floats(min_value=0, max_value=1), st.floats(min_value=0, max_value=1))
def test_the_score_grows_with_reliability(a: float, b: float) -> None:
    low, high = sorted((a, b))
    worse, better = (
        score_venues([_quote(reliability=r)], Side.BUY, D("500"))[0].score for r in (low, high)
    )
    assert worse is not None and better is not None
    assert worse <= better


@given(st.integers(min_value=0, max_value=40))
def test_fillable_counts_only_levels_within_the_band(band: int) -> None:
    asks = (BookLevel(D("100"), D("1")), BookLevel(D("100.1"), D("2")))
    fillable = fillable_within(asks, Side.BUY, float(band))
    assert fillable == (D("3") if band >= 10 else D("1"))


@given(
    st.permutations(["a", "b", "c", "d"]),
    st.lists(st.sampled_from([10.0, 200.0]), min_size=4, max_size=4),
)
def test_the_ranking_does_not_depend_on_the_input_order(
    names: list[str], latencies: list[float]
) -> None:
    quotes = [_quote(n, latency_ms=lat) for n, lat in zip(names, latencies, strict=True)]
    ranked = [s.venue for s in score_venues(quotes, Side.BUY, D("500"))]
    again = [
        s.venue for s in score_venues(sorted(quotes, key=lambda q: q.venue), Side.BUY, D("500"))
    ]
    assert ranked == again
    by_score = {s.venue: s.score for s in score_venues(quotes, Side.BUY, D("500"))}
    assert ranked == sorted(by_score, key=lambda v: (-(by_score[v] or 0.0), v))
