"""Recorded book snapshots (data/book_snapshots.py): the bundled cut and bad files."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import pytest

from stagectl.data.book_snapshots import BUNDLED_BOOK, read_book_snapshots
from stagectl.errors import InputError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SOURCE = SHARED / "binance_perp_BTCUSDT_book_top25_2020-09-01.csv.gz"


def test_the_bundled_cut_holds_three_real_two_sided_snapshots() -> None:
    snapshots = read_book_snapshots(BUNDLED_BOOK)
    assert len(snapshots) == 3
    first = snapshots[0]
    assert (first.exchange, first.market, first.symbol) == ("binance", "perp", "BTCUSDT")
    assert first.timestamp.isoformat() == "2020-09-01T00:00:03.696000+00:00"
    assert first.asks[0].price == Decimal("11657.08") and first.asks[0].qty == Decimal("1.714")
    for snap in snapshots:
        assert len(snap.bids) == len(snap.asks) == 25
        assert snap.bids[0].price < snap.asks[0].price
        assert [b.price for b in snap.bids] == sorted((b.price for b in snap.bids), reverse=True)
        assert [a.price for a in snap.asks] == sorted(a.price for a in snap.asks)


@pytest.mark.skipif(not SOURCE.exists(), reason="../shared/data is absent")
def test_the_bundled_cut_is_the_source_lines_verbatim() -> None:
    cut = gzip.decompress(BUNDLED_BOOK.read_bytes()).decode().splitlines()
    source = gzip.decompress(SOURCE.read_bytes()).decode().splitlines()
    assert cut == source[: len(cut)]
    assert len(cut) == 1 + 3 * 50


def _write(tmp_path: Path, text: str, name: str = "binance_perp_BTCUSDT_book_x.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


HEADER = "timestamp,side,level,price,amount\n"
ROW = "2022-11-01T23:49:39.146Z,bid,1,20377.0,1.77\n"


@pytest.mark.parametrize(
    ("text", "where", "field"),
    [
        (HEADER + ROW + "2022-11-01T23:49:39.146Z,bid,2,abc,1\n", ":3", "price"),
        (HEADER + ROW + "2022-11-01T23:49:39.146Z,mid,2,1,1\n", ":3", "side"),
        (HEADER + "2022-11-01T23:49:39.146Z,ask,x,1,1\n", ":2", "level"),
        (HEADER + "2022-11-01T23:49:39.146Z,ask,1,1,-1\n", ":2", "amount"),
        (HEADER + "yesterday,ask,1,1,1\n", ":2", "timestamp"),
        ("timestamp,side,level,price\n", "", "amount"),
        (HEADER, "", "no snapshot rows"),
    ],
)
def test_a_bad_line_is_named_with_its_field(
    tmp_path: Path, text: str, where: str, field: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as raised:
        read_book_snapshots(path)
    assert f"{path}{where}" in str(raised.value)
    assert field in str(raised.value)


def test_a_file_not_named_like_a_book_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + ROW, name="book.csv")
    with pytest.raises(InputError, match="not a book snapshot file name"):
        read_book_snapshots(path)


def test_a_one_sided_snapshot_keeps_the_side_it_has(tmp_path: Path) -> None:
    (snap,) = read_book_snapshots(_write(tmp_path, HEADER + ROW))
    assert snap.asks == () and snap.bids[0].price == Decimal("20377.0")
