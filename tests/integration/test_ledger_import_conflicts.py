"""One trade id, one fill: metrics import stops (exit 2, both records named, nothing
written) when a trade id comes again with other values, in the same file or already in the
ledger; the same values again stay idempotent (docs/ledger.md, "One trade, one fill")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from stagectl.domain.types import Fill
from stagectl.errors import InputError
from stagectl.services.ledger import importer
from stagectl.state.db import open_state
from stagectl.state.ledger import insert_fills
from tests.conftest import Run, home_state, resolved_home

pytestmark = pytest.mark.usefixtures("home_on_both")

HEADER = "timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity,order_id\n"
BUY = "2025-01-01T00:00:00Z,1,ETHUSDT,buy,2000,0.1,0.2,USDT,taker,o-1\n"
SELL = "2025-01-01T00:01:00Z,1,ETHUSDT,sell,2100,0.5,0.2,USDT,taker,o-2\n"
OTHER = [
    "2025-01-01T00:02:00Z,2,ETHUSDT,buy,2001,1,0,,maker,\n",
    "2025-01-01T00:03:00Z,3,SOLUSDT,sell,150,2,-0.01,USDT,maker,\n",
]
TABLES = ("fills", "fill_totals", "fill_imports", "fill_import_totals")


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(rows))
    return path


def _ledger(home: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the ledger's tables (the visible and the invisible)."""
    state = home_state(home)
    if isinstance(state, Path) and not state.exists():
        return {table: [] for table in TABLES}
    with open_state(state) as db:
        return {
            table: sorted(db.conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in TABLES
        }


def _import(run: Run, path: Path, *extra: str) -> tuple[int, str]:
    result = run(["metrics", "import", path, "--source", "desk", *extra])
    return result.exit_code, result.stderr


def test_the_same_trade_id_twice_in_a_file_with_other_values_stops_the_import(
    run: Run, home: Path, tmp_path: Path
) -> None:
    path = _write(tmp_path / "trades.csv", [OTHER[0], BUY, SELL, OTHER[1]])
    code, stderr = _import(run, path)
    assert code == 2
    (line,) = [line for line in stderr.splitlines() if line.startswith("stagectl: ")]
    assert line.startswith(f"stagectl: {path}:4: trade_id: trade 1 on ETHUSDT conflicts with")
    assert f"with {path}:3 of the same input" in line
    assert "side sell vs buy, amount 0.5 vs 0.1, price 2100 vs 2000" in line
    assert "order_id o-2 vs o-1" in line
    assert "nothing was imported" in line
    assert _ledger(home) == {table: [] for table in TABLES}


def test_a_trade_id_already_in_the_ledger_with_other_values_stops_the_import(
    run: Run, home: Path, tmp_path: Path
) -> None:
    first = _write(tmp_path / "first.csv", [BUY, OTHER[0]])
    assert _import(run, first)[0] == 0
    before = _ledger(home)
    window_before = run(["metrics", "window", "--hours", "1", "--until", "2025-01-01T01:00:00Z"])
    later = _write(tmp_path / "later.csv", [OTHER[1], SELL])
    code, stderr = _import(run, later)
    assert code == 2
    (line,) = [line for line in stderr.splitlines() if line.startswith("stagectl: ")]
    assert line.startswith(f"stagectl: {later}:3: trade_id: trade 1 on ETHUSDT conflicts with")
    assert f"the fill already in the ledger from import {first} (sha256 " in line
    assert "trade ETHUSDT:1 (side sell vs buy" in line
    assert _ledger(home) == before
    window_after = run(["metrics", "window", "--hours", "1", "--until", "2025-01-01T01:00:00Z"])
    assert window_after.stdout == window_before.stdout


def test_the_same_trade_again_with_the_same_values_is_already_recorded(
    run: Run, home: Path, tmp_path: Path
) -> None:
    first = _write(tmp_path / "first.csv", [BUY, OTHER[0], OTHER[1]])
    assert _import(run, first)[0] == 0
    # The same numbers in other words: decimal text is compared as numbers, and the
    # currency of a zero fee is nothing to compare.
    same = [
        BUY.replace(",2000,0.1,0.2,", ",2000.00,0.10,2E-1,"),
        OTHER[0].replace(",0,,", ",0.000,USDT,"),
        OTHER[0],
    ]
    again = _write(tmp_path / "again.csv", same)
    result = run(["metrics", "import", again, "--source", "desk", "--json"])
    assert result.exit_code == 0, result.stderr
    assert (result.json()["inserted"], result.json()["already_recorded"]) == (0, 3)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("2025-01-01T00:00:00Z", "2025-01-01T00:00:00.001Z"), "timestamp"),
        ((",0.2,USDT,", ",0.2,ETH,"), "fee_currency"),
        ((",0.2,USDT,", ",0.3,USDT,"), "fee"),
        ((",taker,", ",maker,"), "liquidity"),
        ((",taker,", ",,"), "liquidity"),
        ((",o-1\n", ",\n"), "order_id"),
    ],
)
def test_each_value_of_a_fill_is_compared(
    run: Run, home: Path, tmp_path: Path, change: tuple[str, str], field: str
) -> None:
    assert _import(run, _write(tmp_path / "a.csv", [BUY]))[0] == 0
    code, stderr = _import(run, _write(tmp_path / "b.csv", [BUY.replace(*change)]))
    assert code == 2
    assert f"({field} " in stderr


def test_the_same_trade_id_under_another_account_or_symbol_is_another_fill(
    run: Run, home: Path, tmp_path: Path
) -> None:
    assert _import(run, _write(tmp_path / "a.csv", [BUY]))[0] == 0
    other_account = run(["metrics", "import", _write(tmp_path / "b.csv", [SELL])])
    assert other_account.exit_code == 0, other_account.stderr
    other_symbol = _write(tmp_path / "c.csv", [SELL.replace("ETHUSDT", "BTCUSDT")])
    assert _import(run, other_symbol)[0] == 0


def test_a_conflict_stops_the_import_even_with_skip_bad(
    run: Run, home: Path, tmp_path: Path
) -> None:
    code, stderr = _import(run, _write(tmp_path / "t.csv", [BUY, SELL]), "--skip-bad")
    assert code == 2
    assert "conflicts with" in stderr
    assert _ledger(home) == {table: [] for table in TABLES}


def test_a_conflict_with_a_fill_a_run_recorded_names_its_source(
    run: Run, home: Path, tmp_path: Path
) -> None:
    with open_state(home_state(home)) as db:
        live = Fill(
            trade_id="ETHUSDT:1",
            ts=datetime(2025, 1, 1, tzinfo=UTC),
            symbol="ETHUSDT",
            side="buy",
            qty=Decimal("0.3"),
            price=Decimal("2000"),
            account="desk",
            source="live",
        )
        insert_fills(db, [live])
    before = _ledger(home)
    code, stderr = _import(run, _write(tmp_path / "t.csv", [BUY]))
    assert code == 2
    assert "the fill already in the ledger from source live, trade ETHUSDT:1" in stderr
    assert "amount 0.1 vs 0.3" in stderr
    assert _ledger(home) == before


def test_a_conflict_in_a_later_chunk_discards_the_merged_ones_and_names_the_first_row(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "CHUNK_ROWS", 4)
    rows = [f"2025-01-01T00:{k:02d}:00Z,{100 + k},SOLUSDT,buy,150,1,0,,maker,\n" for k in range(20)]
    base = _write(tmp_path / "base.csv", [BUY])
    importer.run(importer.ImportRequest(path=base, account="desk"), home=resolved_home(home))
    before = _ledger(home)
    rows[17] = rows[17].replace(",117,", ",102,").replace(",buy,", ",sell,")
    path = _write(tmp_path / "big.csv", rows)
    request = importer.ImportRequest(path=path, account="desk")
    with pytest.raises(InputError) as error:
        importer.run(request, home=resolved_home(home))
    assert error.value.where == f"{path}:19"
    assert f"conflicts with {path}:4 of the same input (side sell vs buy" in error.value.message
    assert _ledger(home) == before
    rows[17] = rows[17].replace(",sell,", ",buy,").replace("00:17:00", "00:02:00")
    again = importer.run(
        importer.ImportRequest(path=_write(path, rows), account="desk"),
        home=resolved_home(home),
    )
    assert (again.inserted, again.duplicates) == (19, 1)
