"""The lot checkpoints (``state.ledger_checkpoints``) across imports in several batches, on
both state backends (PostgreSQL records the batches with ``insert_fills``: it has no import
yet): every stored checkpoint holds exactly the lots an independent Decimal
FIFO leaves open before its time, a fill imported out of order (before existing
checkpoints) drops the ones it changes and the next refresh rebuilds them, ``metrics
window`` answers the same from the checkpoints as from the history, and a fill written by
other means makes readers ignore them."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from stagectl.config.state_url import StateLocation
from stagectl.domain.types import Fill, Liquidity, Side
from stagectl.services.ledger import checkpoints as writer
from stagectl.services.ledger.reads import checkpoint_lots, scan_carried_lots
from stagectl.state._codec import parse_ts
from stagectl.state.db import open_state
from stagectl.state.ledger import fills, insert_fills
from tests.conftest import Run
from tests.integration.test_ledger_totals import T0, random_rows, write
from tests.unit.test_ledger import reference_fifo

SYMBOL = "SOLUSDT"


@pytest.fixture(autouse=True)
def small_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint every 16 fills, so a few hundred fills make many."""
    monkeypatch.setattr(writer, "SPACING", 16)
    monkeypatch.setattr(writer, "REACH", 4096)
    monkeypatch.setattr(writer, "MAX_LOTS", 10_000)


def stored(url: StateLocation) -> list[tuple[str, list[list[str]]]]:
    from stagectl.state.ledger_checkpoints import newest_at_or_before

    with open_state(url) as db:
        times = [
            row[0]
            for row in db.conn.execute(
                "SELECT before_ts FROM fill_lot_checkpoints WHERE symbol = ? ORDER BY before_ts",
                (SYMBOL,),
            )
        ]
        out = []
        for ts in times:
            checkpoint = newest_at_or_before(db.conn, SYMBOL, ts)
            assert checkpoint is not None and checkpoint.before_ts == ts
            out.append((ts, [list(lot) for lot in checkpoint.lots]))
    return out


def ledger(url: StateLocation) -> list[Fill]:
    with open_state(url) as db:
        return fills(db, symbol=SYMBOL)


def reference_lots(history: list[Fill], before: datetime) -> list[tuple[Decimal, Decimal]]:
    """The lots the textbook Decimal FIFO leaves open after the fills before ``before``."""
    _, lots = reference_fifo([f for f in history if f.ts < before])
    return [(qty, price) for qty, price in lots.get(SYMBOL, [])]


def as_pairs(lots: list[Any]) -> list[tuple[Decimal, Decimal]]:
    return [(f.qty if f.side == "buy" else -f.qty, f.price) for f in lots]


def assert_checkpoints_exact(url: StateLocation) -> int:
    """Every stored checkpoint equals the Decimal FIFO; returns how many there are."""
    checkpoints, history = stored(url), ledger(url)
    for ts, lots in checkpoints:
        got = [(Decimal(qty), Decimal(price)) for qty, price, _, _ in lots]
        assert got == reference_lots(history, parse_ts(ts)), ts
    return len(checkpoints)


def import_rows(run: Run, url: StateLocation, path: Path) -> None:
    """``metrics import`` on SQLite; on PostgreSQL (which has no import yet) the same fills
    through ``state.ledger.insert_fills`` and the refresh the import runs."""
    if isinstance(url, Path):
        result = run(["--state", str(url), "metrics", "import", str(path), "--json"])
        assert result.exit_code == 0, result.stderr
        return
    recorded = []
    for line in path.read_text().splitlines()[1:]:
        stamp, trade_id, symbol, side, price, qty, fee, currency, liquidity = line.split(",")
        recorded.append(
            Fill(
                account="desk",
                trade_id=f"{symbol}:{trade_id}",
                symbol=symbol,
                side=Side(side),
                qty=Decimal(qty),
                price=Decimal(price),
                fee=Decimal(fee),
                fee_currency=currency,
                liquidity=Liquidity(liquidity),
                ts=parse_ts(stamp.replace("Z", "+00:00")),
                source="import",
            )
        )
    with open_state(url) as db:
        insert_fills(db, recorded)
        writer.refresh(db, [SYMBOL])


def windows(run: Run, url: StateLocation, untils: list[datetime]) -> list[Any]:
    out = []
    for until in untils:
        args = ["--state", str(url), "metrics", "window", "--seconds", "600"]
        result = run([*args, "--until", until.isoformat(), "--json"])
        assert result.exit_code == 0, result.stderr
        out.append(result.json())
    return out


def test_checkpoints_follow_imports_in_batches_and_out_of_order(
    run: Run, tmp_path: Path, state_url: StateLocation
) -> None:
    rng = random.Random(11)
    rows = random_rows(rng, 900)
    import_rows(run, state_url, write(tmp_path / "a.csv", rows[:300]))
    first = assert_checkpoints_exact(state_url)
    assert first >= 10
    import_rows(run, state_url, write(tmp_path / "b.csv", rows[300:]))
    before_late = stored(state_url)
    assert assert_checkpoints_exact(state_url) > first
    # Fills from the start of the history, imported last: every checkpoint after the
    # earliest of them is stale, dropped by the merge and rebuilt by the refresh.
    late = random_rows(random.Random(12), 40, first_id=100_000)
    import_rows(run, state_url, write(tmp_path / "late.csv", late))
    after_late = stored(state_url)
    assert after_late != before_late
    assert assert_checkpoints_exact(state_url) > 0

    span_end = parse_ts(after_late[-1][0])
    cuts = [T0 + (span_end - T0) * k / 9 + timedelta(microseconds=1) for k in range(10)]
    history = ledger(state_url)
    with open_state(state_url) as db:
        used = 0
        for cut in cuts:
            lots = checkpoint_lots(db, SYMBOL, cut)
            if lots is not None:
                used += 1
                assert as_pairs(lots) == as_pairs(scan_carried_lots(db, SYMBOL, cut))
                assert as_pairs(lots) == reference_lots(history, cut)
        assert used >= 5
    from_checkpoints = windows(run, state_url, cuts)
    with open_state(state_url) as db, db.transaction() as conn:
        conn.execute("DELETE FROM fill_lot_checkpoints")
    assert windows(run, state_url, cuts) == from_checkpoints


def test_a_long_first_import_starts_its_checkpoints_near_its_end(
    run: Run, tmp_path: Path, state_url: StateLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "REACH", 64)
    import_rows(run, state_url, write(tmp_path / "a.csv", random_rows(random.Random(7), 400)))
    checkpoints = stored(state_url)
    assert 4 <= len(checkpoints) <= 6  # from 64 fills before the newest, one per 16
    assert assert_checkpoints_exact(state_url) == len(checkpoints)


def test_a_fill_written_by_other_means_makes_readers_ignore_the_checkpoints(
    run: Run, tmp_path: Path, state_url: StateLocation
) -> None:
    import_rows(run, state_url, write(tmp_path / "a.csv", random_rows(random.Random(5), 200)))
    late_cut = T0 + timedelta(days=30)
    with open_state(state_url) as db:
        assert checkpoint_lots(db, SYMBOL, late_cut) is not None
    with open_state(state_url) as db, db.transaction() as conn:
        conn.execute(
            "INSERT INTO fills (exchange, trade_id, symbol, side, qty, price, fee, ts, source)"
            " VALUES ('x', 'x:1', ?, 'buy', '1', '100', '0', '2025-03-01T00:00:00.000000Z',"
            " 'import')",
            (SYMBOL,),
        )
    with open_state(state_url) as db:
        assert checkpoint_lots(db, SYMBOL, late_cut) is None
