"""stagectl route offline: the bundled snapshot, --book files, styles, bad input."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from stagectl.data.book_snapshots import BUNDLED_BOOK
from stagectl.domain.types import Order, OrderStatus, OrderType, Side
from stagectl.state.db import open_state
from stagectl.state.orders import upsert_order
from tests.conftest import Run

HEADER = "timestamp,side,level,price,amount\n"


def _book(tmp: Path, name: str, bid: str, ask: str, qty: str = "5") -> Path:
    """A two-level book a side, named like the shared data."""
    path = tmp / f"binance_perp_BTCUSDT_book_{name}.csv"
    t = "2024-01-01T00:00:00.000Z"
    step = Decimal("0.1")
    lines = [
        f"{t},bid,1,{bid},{qty}\n",
        f"{t},bid,2,{Decimal(bid) - step},{qty}\n",
        f"{t},ask,1,{ask},{qty}\n",
        f"{t},ask,2,{Decimal(ask) + step},{qty}\n",
    ]
    path.write_text(HEADER + "".join(lines))
    return path


def test_offline_default_scores_the_bundled_snapshot(run: Run) -> None:
    result = run(["route", "--symbol", "BTCUSDT", "--side", "buy", "--notional", "25000", "--json"])
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["chosen"] == "binance"
    (score,) = doc["scores"]
    assert score["source"].startswith(BUNDLED_BOOK.name + " @ 2020-09-01T00:00:03.888Z")
    assert set(score["sub_scores"]) == {"spread", "queue", "latency", "reliability", "size"}
    assert score["sub_scores"]["latency"] == 0.5  # a recorded book has no latency
    assert doc["style"] == {"style": "limit", "reason": "small order in a tight market"}
    assert doc["weights"] == {
        "spread": 0.3,
        "queue": 0.2,
        "latency": 0.2,
        "reliability": 0.15,
        "size": 0.15,
    }


def test_human_output_names_scores_venue_and_style(run: Run) -> None:
    result = run(["route", "--symbol", "BTCUSDT", "--side", "sell", "--notional", "1000"])
    assert result.exit_code == 0, result.stderr
    assert "chosen venue: binance" in result.stdout
    assert "style: limit" in result.stdout


@pytest.mark.parametrize(
    ("extra", "style"),
    [
        (["--persistence", "0.8"], "twap"),
        (["--notional", "60000"], "iceberg"),
        (["--avg-volume", "100000"], "pov"),
        (["--urgent", "--persistence", "0.9"], "market"),
    ],
)
def test_the_style_follows_seed_001s_rules(run: Run, extra: list[str], style: str) -> None:
    args = ["route", "--symbol", "BTCUSDT", "--side", "buy", "--notional", "20000", "--json"]
    result = run([*args, *extra])
    assert result.exit_code == 0, result.stderr
    assert result.json()["style"]["style"] == style


def test_a_wide_book_gets_post_only_and_the_better_book_wins(run: Run, tmp_path: Path) -> None:
    wide = _book(tmp_path, "wide", "99.9", "100.1")  # 20 bps
    tight = _book(tmp_path, "tight", "99.99", "100.01")  # 2 bps
    args = ["route", "--symbol", "BTCUSDT", "--side", "buy", "--notional", "100", "--json"]
    both = run([*args, "--book", f"w={wide}", "--book", f"t={tight}"]).json()
    assert [s["venue"] for s in both["scores"]] == ["t", "w"]
    assert both["chosen"] == "t"
    alone = run([*args, "--book", f"w={wide}", "--book", f"t={tight}", "--venues", "w"]).json()
    assert alone["chosen"] == "w"
    assert alone["style"]["style"] == "post_only"


def test_recorded_orders_set_the_reliability(run: Run, home: Path, tmp_path: Path) -> None:
    book = _book(tmp_path, "a", "99.99", "100.01")
    now = datetime(2024, 1, 1, tzinfo=UTC)
    with open_state(home / "state" / "stagectl.db") as db:
        for i, status in enumerate([OrderStatus.FILLED] * 3 + [OrderStatus.REJECTED]):
            upsert_order(
                db,
                Order(
                    client_order_id=f"c{i}",
                    symbol="BTCUSDT",
                    side=Side.BUY,
                    type=OrderType.MARKET,
                    qty=Decimal(1),
                    created_at=now,
                    status=status,
                    account="venue_a",
                ),
            )
    args = ["route", "--symbol", "BTCUSDT", "--side", "buy", "--notional", "100", "--json"]
    doc = run([*args, "--book", f"venue_a={book}"]).json()
    (score,) = doc["scores"]
    assert score["reliability"] == 0.75
    assert score["reliability_basis"] == "orders: 3/4 recent not rejected"


def test_a_one_sided_book_is_scored_out_and_alone_it_is_exit_2(run: Run, tmp_path: Path) -> None:
    bids_only = tmp_path / "binance_perp_BTCUSDT_book_snapshot.csv"
    bids_only.write_text(HEADER + "2022-11-01T23:49:39.146Z,bid,1,20377.0,1.77\n")
    args = ["route", "--symbol", "BTCUSDT", "--side", "sell", "--notional", "100"]
    alone = run([*args, "--book", str(bids_only)])
    assert alone.exit_code == 2
    assert "book has no asks" in alone.stderr and "--symbol" in alone.stderr
    with_other = run([*args, "--book", str(bids_only), "--book", f"b={BUNDLED_BOOK}", "--json"])
    assert with_other.exit_code == 0, with_other.stderr
    doc = with_other.json()
    assert doc["chosen"] == "b"
    assert doc["scores"][-1]["excluded"] == "book has no asks: spread unknown"


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--side", "hold"], "--side"),
        (["--notional", "abc"], "--notional"),
        (["--notional", "-5"], "--notional"),
        (["--notional", "nan"], "--notional"),
        (["--persistence", "1.5"], "--persistence"),
        (["--avg-volume", "-1"], "--avg-volume"),
        (["--venues", "nowhere"], "--venues"),
        (["--book", "missing_perp_BTCUSDT_book_x.csv"], "--book"),
        (["--book", "notabook.csv"], "--book"),
        (["--book", f"a={BUNDLED_BOOK}", "--book", f"a={BUNDLED_BOOK}"], "--book"),
        (["--exchange", "a=binanceusdm@ftp://x"], "--exchange"),
        (["--exchange", "nosuchexchange"], "--exchange"),
        (["--exchange", "a=,b=binanceusdm"], "--exchange"),
        (["--exchange", "binanceusdm,binanceusdm"], "--exchange"),
        (["--exchange", "binanceusdm,"], "--exchange"),
        (["--book", f"binanceusdm={BUNDLED_BOOK}", "--exchange", "binanceusdm"], "--exchange"),
        (["--symbol", "ETHUSDT"], "--symbol"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(run: Run, args: list[str], where: str) -> None:
    base = {"--symbol": "BTCUSDT", "--side": "buy", "--notional": "100"}
    for flag in ("--symbol", "--side", "--notional"):
        if flag in args:
            base.pop(flag)
    flat = [x for pair in base.items() for x in pair]
    result = run(["route", *flat, *args])
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert where in lines[0]


def test_the_bundled_cut_is_small() -> None:
    assert BUNDLED_BOOK.stat().st_size < 4096
    assert gzip.decompress(BUNDLED_BOOK.read_bytes()).count(b"\n") == 151
