"""metrics import of a file read in several chunks (the staged, pipelined write path):
the same contracts as a one-chunk file: all or nothing, the first bad row named and nothing
left written, idempotent, file order kept, fill_totals equal to a full recount."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagectl.config.home import Home
from stagectl.errors import InputError
from stagectl.services.ledger import importer as metrics_import
from stagectl.state.db import open_state
from stagectl.state.ledger_totals import sum_deltas

HEADER = "timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity,order_id\n"


def _rows(n: int) -> list[str]:
    rows = []
    for k in range(n):
        symbol, fee, currency = (
            ("ETHUSDT", "0.00001", "ETH") if k % 3 == 0 else ("SOLUSDT", "-0.01", "USDT")
        )
        side = "buy" if k % 4 < 2 else "sell"
        liquidity = "" if k % 5 == 0 else "maker"
        order = "" if k % 2 else f"o{k // 2}"
        rows.append(
            f"2025-01-01T00:00:{k % 60:02d}.{k:06d}Z,{k},{symbol},{side},{100 + k % 7}.25,"
            f"0.{k % 9 + 1}0,{fee},{currency},{liquidity},{order}\n"
        )
    return rows


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_import, "CHUNK_ROWS", 4)


def _import(home: Path, path: Path, *, skip_bad: bool = False) -> metrics_import.ImportResult:
    request = metrics_import.ImportRequest(path=path, account="acct", skip_bad=skip_bad)
    return metrics_import.run(request, home=Home.resolve(home))


def _ledger(home: Path) -> tuple[list[tuple[str, ...]], dict[str, tuple[int, str]]]:
    with open_state(Home.resolve(home).state_path) as db:
        rows = db.conn.execute(
            "SELECT trade_id, symbol, side, qty, price, fee, fee_currency, liquidity,"
            " exchange_order_id, ts FROM fills ORDER BY id"
        ).fetchall()
        totals = {s: (n, p) for s, n, p in db.conn.execute("SELECT * FROM fill_totals")}
    return rows, totals


@pytest.mark.usefixtures("chunked")
def test_a_chunked_import_keeps_file_order_and_exact_text_and_is_idempotent(
    home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "trades.csv"
    path.write_text(HEADER + "".join(_rows(23)))
    first = _import(home, path)
    assert (first.rows, first.inserted, first.duplicates) == (23, 23, 0)
    again = _import(home, path)
    assert (again.inserted, again.duplicates) == (0, 23)
    rows, totals = _ledger(home)
    assert [r[0].split(":")[1] for r in rows] == [str(k) for k in range(23)]
    assert rows[0] == (
        "ETHUSDT:0",
        "ETHUSDT",
        "buy",
        "0.10",
        "100.25",
        "0.00001",
        "ETH",
        None,
        "o0",
        "2025-01-01T00:00:00.000000Z",
    )
    assert rows[1][7:9] == ("maker", None)
    for symbol, (count, position) in totals.items():
        mine = [(r[2], r[3], r[5], r[6]) for r in rows if r[1] == symbol]
        assert (count, position) == (len(mine), str(sum_deltas(symbol, mine).position))


@pytest.mark.usefixtures("chunked")
def test_a_bad_row_in_a_later_chunk_is_named_and_nothing_is_written(
    home: Path, tmp_path: Path
) -> None:
    rows = _rows(23)
    rows[13] = rows[13].replace(",sell,", ",hold,").replace(",buy,", ",hold,")
    rows[20] = rows[20].replace("100.25", "-1").replace(f"{100 + 20 % 7}.25", "-1")
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "".join(rows))
    with pytest.raises(InputError) as error:
        _import(home, path)
    assert error.value.where == f"{path}:15"
    assert error.value.message.startswith("side: must be buy or sell")
    assert "(1 more bad rows)" in error.value.message
    assert _ledger(home) == ([], {})
    result = _import(home, path, skip_bad=True)
    assert (result.inserted, [b.row for b in result.bad]) == (21, [15, 22])
    recorded, totals = _ledger(home)
    assert len(recorded) == 21
    assert sum(n for n, _ in totals.values()) == 21
