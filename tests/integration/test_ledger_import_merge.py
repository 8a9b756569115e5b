"""metrics import merges in short transactions under an import record: a half-merged import
is invisible to every reader, a rerun completes it exactly once, the next import of other
content discards an abandoned one, and another process keeps writing meanwhile."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from stagectl.domain.types import Fill
from stagectl.errors import InputError
from stagectl.services.ledger import importer
from stagectl.services.ledger.reads import carried_lots, scan_carried_lots
from stagectl.state.db import StateDB, open_state
from stagectl.state.fill_visibility import SIMULATED_SOURCES
from stagectl.state.ledger import fills
from stagectl.state.ledger_imports import unfinished_imports
from stagectl.state.ledger_merge import MERGE_BATCH_ROWS, MergeStep
from stagectl.state.ledger_reads import position_before
from stagectl.state.ledger_totals import sum_deltas
from tests.conftest import REPO_ROOT, Run, home_state, resolved_home

pytestmark = pytest.mark.usefixtures("home_on_both")

HEADER = "timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity\n"
EARLY = [
    "2025-01-01T00:00:00Z,1,SOLUSDT,buy,100.5,2,0.02,USDT,taker\n",
    "2025-01-01T00:01:00Z,2,SOLUSDT,sell,101.25,1.5,-0.0151,USDT,maker\n",
    "2025-01-01T00:02:00Z,3,ETHUSDT,buy,3000.10,0.01,0.00001,ETH,maker\n",
]
T0 = datetime(2025, 2, 1, tzinfo=UTC)
PROCESSES = (sys.executable, "-m", "tests.integration.ledger_processes")


class StopImport(Exception):
    """Raised from ``after_merge`` to stop an import between two merge transactions."""


def stop_after(steps: int) -> Callable[[MergeStep], None]:
    merged = 0

    def after(step: MergeStep) -> None:
        nonlocal merged
        merged += 1
        if merged == steps:
            raise StopImport

    return after


def trades_csv(path: Path, rows: int, first_id: int = 1000) -> Path:
    """``rows`` SOLUSDT fills one second apart: buys and sells, base-currency fees on some
    (they change the position) and rebates on others. A trade's values follow from its id,
    so two files that share ids hold the same fills (other values would be a conflict)."""
    with path.open("w") as handle:
        handle.write(HEADER)
        for k in range(first_id - 1000, first_id - 1000 + rows):
            side = "buy" if k % 3 else "sell"
            fee, currency = ("0.001", "SOL") if k % 5 == 0 else ("-0.0002", "USDT")
            stamp = (T0 + timedelta(seconds=k)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            handle.write(
                f"{stamp},{1000 + k},SOLUSDT,{side},{150 + k % 97 / 100},"
                f"{1 + k % 7}.5,{fee},{currency},maker\n"
            )
    return path


def import_file(
    home: Path, path: Path, after_merge: Callable[[MergeStep], None] | None = None
) -> importer.ImportResult:
    request = importer.ImportRequest(path=path, account="acct")
    return importer.run(request, home=resolved_home(home), after_merge=after_merge)


def state(home: Path) -> StateDB:
    return open_state(home_state(home))


def stored_rows(db: StateDB) -> int:
    """Rows in the fills table, visible or not."""
    return int(db.conn.execute("SELECT count(*) FROM fills").fetchone()[0])


def totals(db: StateDB) -> dict[str, tuple[int, Decimal]]:
    rows = db.conn.execute("SELECT symbol, fills, position FROM fill_totals")
    return {symbol: (count, Decimal(position)) for symbol, count, position in rows}


def recount(visible: list[Fill]) -> dict[str, tuple[int, Decimal]]:
    """``fill_totals`` as it must be: the sums over the visible fills the desk's ledger
    counts (not the simulated ones, e.g. a paper run's)."""
    by_symbol: dict[str, list[tuple[str, str, str, str | None]]] = {}
    for fill in visible:
        if fill.source in SIMULATED_SOURCES:
            continue
        row = (fill.side, str(fill.qty), str(fill.fee), fill.fee_currency)
        by_symbol.setdefault(fill.symbol, []).append(row)
    out = {}
    for symbol, rows in by_symbol.items():
        total = sum_deltas(symbol, rows)
        out[symbol] = (total.fills, total.position)
    return out


def window_fills(run: Run) -> int:
    """How many fills ``metrics window`` sees from 2025-01-01 to 2025-03-01."""
    result = run(["metrics", "window", "--hours", "1416", "--until", "2025-03-01", "--json"])
    assert result.exit_code == 0, result.stderr
    return int(result.json()["total"]["fills"])


def test_a_half_merged_import_is_invisible_to_every_reader(
    run: Run, home: Path, tmp_path: Path
) -> None:
    early = tmp_path / "early.csv"
    early.write_text(HEADER + "".join(EARLY))
    import_file(home, early)
    big = trades_csv(tmp_path / "big.csv", 3 * MERGE_BATCH_ROWS)
    with state(home) as db:
        before = totals(db)
    with pytest.raises(StopImport):
        import_file(home, big, after_merge=stop_after(1))
    with state(home) as db:
        assert stored_rows(db) == 3 + MERGE_BATCH_ROWS  # merged, but not visible:
        assert len(fills(db)) == 3
        assert len(fills(db, symbol="SOLUSDT", start=T0)) == 0
        assert totals(db) == before == recount(fills(db))
        (unfinished,) = unfinished_imports(db)
        assert (unfinished.origin, unfinished.merged_rows) == (str(big), MERGE_BATCH_ROWS)
        cut = T0 + timedelta(days=1)
        assert position_before(db, "SOLUSDT", cut) == before["SOLUSDT"][1]
        assert carried_lots(db, "SOLUSDT", cut) == scan_carried_lots(db, "SOLUSDT", cut)
    assert window_fills(run) == 3


def test_rerunning_a_stopped_import_completes_it_exactly_once(
    run: Run, home: Path, tmp_path: Path
) -> None:
    big = trades_csv(tmp_path / "big.csv", 3 * MERGE_BATCH_ROWS)
    with pytest.raises(StopImport):
        import_file(home, big, after_merge=stop_after(2))
    done = import_file(home, big)
    assert (done.inserted, done.duplicates) == (3 * MERGE_BATCH_ROWS, 0)
    again = import_file(home, big)
    assert (again.inserted, again.duplicates) == (0, 3 * MERGE_BATCH_ROWS)
    with state(home) as db:
        visible = fills(db)
        assert stored_rows(db) == len(visible) == 3 * MERGE_BATCH_ROWS
        assert totals(db) == recount(visible)
        assert unfinished_imports(db) == []
        cut = T0 + timedelta(seconds=2 * MERGE_BATCH_ROWS + 17)
        assert position_before(db, "SOLUSDT", cut) is not None
        assert carried_lots(db, "SOLUSDT", cut) == scan_carried_lots(db, "SOLUSDT", cut)
    assert window_fills(run) == 3 * MERGE_BATCH_ROWS


def test_a_killed_import_leaves_nothing_visible_and_its_rerun_completes_it(
    run: Run, home: Path, tmp_path: Path
) -> None:
    big = trades_csv(tmp_path / "big.csv", 3 * MERGE_BATCH_ROWS)
    killed = subprocess.run(
        [*PROCESSES, "killed-import", str(home), str(big), "import", "2"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with state(home) as db:
        assert stored_rows(db) == 2 * MERGE_BATCH_ROWS
        assert fills(db) == []
        assert totals(db) == {}
    assert window_fills(run) == 0
    rerun = run(["metrics", "import", big, "--json"])
    assert rerun.exit_code == 0, rerun.stderr
    assert (rerun.json()["inserted"], rerun.json()["already_recorded"]) == (3 * MERGE_BATCH_ROWS, 0)
    with state(home) as db:
        visible = fills(db)
        assert stored_rows(db) == len(visible) == 3 * MERGE_BATCH_ROWS
        assert totals(db) == recount(visible)


def test_the_next_import_of_other_content_discards_an_abandoned_one(
    home: Path, tmp_path: Path
) -> None:
    first = trades_csv(tmp_path / "first.csv", 2 * MERGE_BATCH_ROWS)
    with pytest.raises(StopImport):
        import_file(home, first, after_merge=stop_after(1))
    # Overlaps the first file's merged half: its trades must not stay hidden behind it.
    second = trades_csv(tmp_path / "second.csv", MERGE_BATCH_ROWS, first_id=1000 + 500)
    result = import_file(home, second)
    assert (result.inserted, result.duplicates) == (MERGE_BATCH_ROWS, 0)
    with state(home) as db:
        visible = fills(db)
        assert stored_rows(db) == len(visible) == MERGE_BATCH_ROWS
        assert unfinished_imports(db) == []
        assert totals(db) == recount(visible)
    rerun = import_file(home, first)
    assert (rerun.inserted, rerun.duplicates) == (MERGE_BATCH_ROWS, MERGE_BATCH_ROWS)
    with state(home) as db:
        visible = fills(db)
        assert stored_rows(db) == len(visible) == 2 * MERGE_BATCH_ROWS
        assert totals(db) == recount(visible)


def test_a_bad_row_after_merging_began_makes_nothing_of_the_file_visible(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "CHUNK_ROWS", MERGE_BATCH_ROWS)
    path = trades_csv(tmp_path / "bad.csv", 3 * MERGE_BATCH_ROWS)
    lines = path.read_text().splitlines(keepends=True)
    lines[-2] = lines[-2].replace(",maker", ",both")
    path.write_text("".join(lines))
    with pytest.raises(InputError, match="liquidity"):
        import_file(home, path)
    with state(home) as db:
        assert stored_rows(db) == 0
        assert unfinished_imports(db) == []
        assert totals(db) == {}


def test_another_process_writes_short_transactions_while_a_large_import_merges(
    home: Path, tmp_path: Path
) -> None:
    rows = 200_000
    big = trades_csv(tmp_path / "big.csv", rows)
    state_path = home_state(home)
    open_state(state_path).close()
    stop, report = tmp_path / "stop", tmp_path / "writer.json"
    writer = subprocess.Popen(
        [*PROCESSES, "writer", str(state_path), str(stop), str(report)],
        cwd=REPO_ROOT,
        env={**os.environ, "STAGECTL_BUSY_TIMEOUT_MS": "2000"},
    )
    try:
        ready = report.with_name(report.name + ".ready")
        while not ready.exists() and writer.poll() is None:
            time.sleep(0.01)
        result = import_file(home, big)
    finally:
        stop.touch()
        assert writer.wait(timeout=60) == 0
    counts = json.loads(report.read_text())
    assert counts["failures"] == 0
    assert counts["while_importing"] > 0
    assert result.inserted == rows
    with state(home) as db:
        visible = fills(db)
        assert stored_rows(db) == len(visible) == rows + counts["writes"]
        assert totals(db) == recount(visible)
