"""metrics import of a file read in several chunks (the staged, pipelined write path):
the same contracts as a one-chunk file: all or nothing, the first bad row named and nothing
left written, idempotent, file order kept, fill_totals equal to a full recount."""

from __future__ import annotations

import shutil
import sys
import threading
from pathlib import Path
from types import FrameType

import pytest

from stagectl.cli._signals import after_interruption
from stagectl.config.home import Home
from stagectl.errors import InputError, Interrupted
from stagectl.services.ledger import importer as metrics_import
from stagectl.state.db import open_state
from stagectl.state.ledger import fills
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


HAND_OVER_TYPES = ("lock", "RLock", "SimpleQueue")
"""The C types every thread hand-over ends in: ``_thread`` locks (under ``queue.Queue``,
``threading.Semaphore``, ``Event``, ``Condition``, ``Thread.join``) and ``queue.SimpleQueue``."""


@pytest.mark.usefixtures("chunked")
def test_an_import_interrupted_at_any_thread_hand_over_ends_and_shows_nothing(
    home: Path, tmp_path: Path
) -> None:
    """SIGINT and SIGTERM raise ``Interrupted`` wherever the importing thread is
    (``cli._signals``). Raised in turn right after each lock or queue operation of that
    thread, it must unwind the import (never wait for ever on a lock it left taken) and
    leave the file's fills all visible (it was interrupted after they were) or none."""
    path = tmp_path / "trades.csv"
    path.write_text(HEADER + "".join(_rows(10)))
    with open_state(Home.resolve(home).state_path):
        pass  # a migrated database, copied for every attempt
    point = 0
    while True:
        point += 1
        attempt = tmp_path / f"attempt-{point}"
        shutil.copytree(home / "state", attempt / "state")
        outcome = _import_interrupted_at(point, attempt, path)
        assert outcome != "stuck", f"the import waits for ever when interrupted at {point}"
        if outcome == "completed":
            break
        assert outcome == "interrupted", f"interrupted at {point}: {outcome}"
        with open_state(Home.resolve(attempt).state_path) as db:
            visible = len(fills(db))
        assert visible in (0, 10), f"interrupted at {point}: {visible} of 10 fills visible"
    assert point > 10  # the sweep did pass through the hand-overs


def _import_interrupted_at(point: int, home: Path, path: Path) -> str:
    """Import in a thread that raises ``Interrupted`` after its ``point``-th hand-over
    operation: "interrupted" (also an error raised while it unwound, as ``threading`` can
    when cut inside its own bookkeeping: ``main()`` exits 130 for both), "completed"
    (fewer operations than ``point``), "stuck", or the error the import ended with."""
    outcome: list[str] = []
    seen = 0

    def interrupt(frame: FrameType, event: str, arg: object) -> None:
        nonlocal seen
        owner = getattr(arg, "__self__", None)
        if event == "c_return" and type(owner).__name__ in HAND_OVER_TYPES:
            seen += 1
            if seen == point:
                raise Interrupted()

    def work() -> None:
        sys.setprofile(interrupt)
        try:
            _import(home, path)
            outcome.append("completed")
        except BaseException as error:
            outcome.append("interrupted" if after_interruption(error) else repr(error))
        finally:
            sys.setprofile(None)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=60)  # a hang guard: an import of ten rows takes milliseconds
    return outcome[0] if outcome else "stuck"
