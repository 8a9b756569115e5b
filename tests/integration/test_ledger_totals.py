"""The ledger's running totals and the lots read from them equal a full FIFO over the history.

``metrics window`` reads the lots open at the window start from ``fill_totals`` and a short
backward scan (services.ledger.reads.carried_lots); these tests compare it with the full
scan through the integer FIFO kernel (scan_carried_lots) on random ledgers with position
flips, base-currency fees, rebates, equal timestamps, duplicate imports and live inserts.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from stagectl.config.home import Home
from stagectl.domain.types import Fill
from stagectl.services.ledger.reads import carried_lots, newest_lots, scan_carried_lots
from stagectl.state.db import StateDB, open_state
from stagectl.state.ledger import insert_fills
from stagectl.state.ledger_reads import position_before
from stagectl.state.ledger_totals import book_delta, sum_deltas, totals_by_part
from tests.conftest import Run

HEADER = "timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity\n"
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def random_rows(rng: random.Random, n: int, first_id: int = 0) -> list[str]:
    rows = []
    moment = T0
    for k in range(n):
        moment += timedelta(seconds=rng.choice([0, 0, 1, 7, 60]))  # ties on purpose
        side = rng.choice(["buy", "sell"])
        qty = Decimal(rng.randint(1, 4000)).scaleb(-3)
        price = Decimal(rng.randint(9000, 11000)).scaleb(-2)
        fee, currency = rng.choice(
            [("0", ""), ("-0.0001", "USDT"), ("0.02", "USDT"), ("0.0004", "SOL")]
        )
        if currency == "SOL" and side == "buy" and Decimal(fee) >= qty:
            fee, currency = "0", ""
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        rows.append(f"{stamp},{first_id + k},SOLUSDT,{side},{price},{qty},{fee},{currency},maker\n")
    return rows


def write(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(rows))
    return path


def lot_view(lots: list[object]) -> list[tuple[str, str, Decimal, Decimal]]:
    return [(f.trade_id, f.side, f.qty, f.price) for f in lots]  # type: ignore[attr-defined]


def assert_fast_equals_scan(db: StateDB, cuts: list[datetime], *, from_totals: bool) -> None:
    """carried_lots equals the full scan at every cut; ``from_totals``: and it really came
    from the totals (no fallback)."""
    for cut in cuts:
        slow = lot_view(scan_carried_lots(db, "SOLUSDT", cut))
        assert lot_view(carried_lots(db, "SOLUSDT", cut)) == slow, cut
        position = position_before(db, "SOLUSDT", cut)
        assert (position is not None) == from_totals
        if position is not None:
            newest = newest_lots(db, "SOLUSDT", cut, position)
            assert newest is not None and lot_view(newest) == slow, cut


def row_delta(row: str) -> Decimal:
    _, _, symbol, side, _, qty, fee, currency, _ = row.strip().split(",")
    return book_delta(symbol, side, qty, fee, currency)


def state(home: Path) -> StateDB:
    return open_state(Home.resolve(home).state_path)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lots_from_totals_equal_the_full_fifo_scan(
    run: Run, home: Path, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    rows = random_rows(rng, 600)
    assert run(["metrics", "import", write(tmp_path / "a.csv", rows[:400])]).exit_code == 0
    # The second file overlaps the first: duplicates are skipped and the totals read back.
    result = run(["metrics", "import", write(tmp_path / "b.csv", rows[300:]), "--json"])
    assert result.json()["inserted"] == 200
    with state(home) as db:
        (count, position) = db.conn.execute("SELECT fills, position FROM fill_totals").fetchone()
        assert count == 600
        assert Decimal(position) == sum((row_delta(r) for r in rows), Decimal(0))
        cuts = [T0 + timedelta(seconds=s) for s in range(0, 20_000, 397)]
        assert_fast_equals_scan(db, cuts, from_totals=True)
        assert position_before(db, "SOLUSDT", T0) == 0


def test_live_inserts_keep_the_totals_and_unknown_writes_fall_back_to_the_scan(
    run: Run, home: Path, tmp_path: Path
) -> None:
    rows = random_rows(random.Random(9), 200)
    run(["metrics", "import", write(tmp_path / "a.csv", rows)])
    live = [
        Fill(
            account="binanceusdm",
            trade_id=f"SOLUSDT:{k}",
            symbol="SOLUSDT",
            side="sell" if k % 3 else "buy",
            qty=Decimal("0.7"),
            price=Decimal("101.5"),
            fee=Decimal("0.001"),
            fee_currency="SOL",
            ts=T0 + timedelta(hours=1, seconds=k),
            source="live",
        )
        for k in range(20)
    ]
    cuts = [T0 + timedelta(minutes=m) for m in range(0, 90, 7)]
    with state(home) as db:
        insert_fills(db, live)
        assert db.conn.execute("SELECT fills FROM fill_totals").fetchone()[0] == 220
        assert_fast_equals_scan(db, cuts, from_totals=True)
        with db.transaction() as conn:  # a writer that bypasses state.ledger
            conn.execute(
                "INSERT INTO fills (exchange, trade_id, symbol, side, qty, price, fee, ts, source)"
                " VALUES ('x', 'SOLUSDT:x', 'SOLUSDT', 'buy', '5', '100', '0',"
                " '2025-03-01T00:00:00.000000Z', 'manual')"
            )
        assert_fast_equals_scan(db, cuts, from_totals=False)


def test_a_ledger_without_totals_gets_them_from_its_history_on_the_next_insert(
    run: Run, home: Path, tmp_path: Path
) -> None:
    rows = random_rows(random.Random(4), 300)
    run(["metrics", "import", write(tmp_path / "a.csv", rows[:250])])
    with state(home) as db, db.transaction() as conn:
        conn.execute("DELETE FROM fill_totals")  # as after the migration on an old ledger
    run(["metrics", "import", write(tmp_path / "b.csv", rows[250:])])
    with state(home) as db:
        assert db.conn.execute("SELECT fills FROM fill_totals").fetchone()[0] == 300
        cuts = [T0 + timedelta(seconds=s) for s in range(0, 9000, 611)]
        assert_fast_equals_scan(db, cuts, from_totals=True)


def test_totals_of_merge_parts_equal_the_sums_over_each_part() -> None:
    import numpy as np

    rows = [row.strip().split(",") for row in random_rows(random.Random(5), 250)]
    rows += [[*row[:2], "ETHUSDT", *row[3:6], "0.001", "ETH", row[8]] for row in rows[:40]]
    random.Random(6).shuffle(rows)
    column = {
        name: np.array([row[k] or None for row in rows], dtype=object)
        for k, name in enumerate(HEADER.strip().split(","))
    }
    parts = totals_by_part(
        column["symbol"],
        column["side"],
        column["amount"],
        column["fee"],
        column["fee_currency"],
        part_rows=64,
    )
    assert len(parts) == 5
    for k, part in enumerate(parts):
        chunk = rows[64 * k : 64 * (k + 1)]
        expected = {
            symbol: sum_deltas(
                symbol, [(r[3], r[5], r[6], r[7] or None) for r in chunk if r[2] == symbol]
            )
            for symbol in {r[2] for r in chunk}
        }
        assert part == expected
        assert {s: str(t.position) for s, t in part.items()} == {
            s: str(t.position) for s, t in expected.items()
        }


def test_the_mark_spares_the_count_until_a_write_by_other_means(
    run: Run, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After imports and live inserts the mark is at the largest fill id and the totals are
    trusted without counting the symbol's history; a row deleted or inserted by other means
    sends readers back to counting (and then to the scan, the count no longer matching)."""
    from stagectl.state import ledger_totals

    rows = random_rows(random.Random(11), 300)
    run(["metrics", "import", write(tmp_path / "a.csv", rows[:200])])
    run(["metrics", "import", write(tmp_path / "b.csv", rows[150:])])
    cuts = [T0 + timedelta(seconds=s) for s in range(0, 9000, 701)]
    with state(home) as db:
        insert_fills(db, [_live_fill(0)])
        mark = db.conn.execute("SELECT last_id FROM fill_totals_mark").fetchone()[0]
        assert mark == db.conn.execute("SELECT max(id) FROM fills").fetchone()[0]

        def no_count(*_: object) -> int:
            raise AssertionError("the history was counted")

        with monkeypatch.context() as patched:
            patched.setattr(ledger_totals, "ledger_fill_count", no_count)
            assert_fast_equals_scan(db, cuts, from_totals=True)
        with db.transaction() as conn:  # a writer that bypasses state.ledger
            conn.execute("DELETE FROM fills WHERE id = 5")
        assert db.conn.execute("SELECT count(*) FROM fill_totals_mark").fetchone()[0] == 0
        assert_fast_equals_scan(db, cuts, from_totals=False)
        insert_fills(db, [_live_fill(1)])  # a later write does not restore the trust
        assert_fast_equals_scan(db, cuts, from_totals=False)


def test_a_discarded_import_keeps_the_mark(
    run: Run, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A discarded import deletes only rows no reader saw: the mark follows the largest id
    down and the totals stay trusted without a count."""
    from stagectl.services.ledger import importer

    monkeypatch.setattr(importer, "CHUNK_ROWS", 4)  # merges begin before the bad row
    rows = random_rows(random.Random(12), 100)
    run(["metrics", "import", write(tmp_path / "a.csv", rows)])
    bad = random_rows(random.Random(13), 50, first_id=1000)
    bad.append(bad[-1].replace(",maker\n", ",nobody\n"))
    with state(home) as db:
        before = db.conn.execute("SELECT max(id) FROM fills").fetchone()[0]
    assert run(["metrics", "import", write(tmp_path / "bad.csv", bad)]).exit_code == 2
    with state(home) as db:
        assert db.conn.execute("SELECT max(id) FROM fills").fetchone()[0] == before
        assert db.conn.execute("SELECT last_id FROM fill_totals_mark").fetchone()[0] == before


def _live_fill(k: int) -> Fill:
    return Fill(
        account="binanceusdm",
        trade_id=f"SOLUSDT:live{k}",
        symbol="SOLUSDT",
        side="buy",
        qty=Decimal("0.5"),
        price=Decimal("100"),
        ts=T0 + timedelta(hours=3, seconds=k),
        source="live",
    )


@pytest.mark.parametrize("seed", range(4))
def test_sum_deltas_is_the_row_by_row_sum_digit_for_digit(seed: int) -> None:
    """``sum_deltas`` books each distinct row once times its count: the same Decimal, text
    and exponent included, as adding every row's book delta in turn."""
    from stagectl.state.ledger_totals import EXACT

    rng = random.Random(seed)
    rows = []
    for _ in range(400):
        qty = rng.choice(["0.5", "0.50", "1", "2.125", "0.001", "3.0000"])
        fee, currency = rng.choice([("0", None), ("-0.0001", "USDT"), ("0.00010", "SOL")])
        rows.append((rng.choice(["buy", "sell"]), qty, fee, currency))
    total = Decimal(0)
    for side, qty, fee, currency in rows:
        total = EXACT.add(total, book_delta("SOLUSDT", side, qty, fee, currency))
    got = sum_deltas("SOLUSDT", rows)
    assert (got.fills, str(got.position)) == (len(rows), str(total))
