"""metrics import against a real state database: idempotent, atomic per file, --skip-bad,
and a process killed mid-import leaves the ledger as it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from stagectl.state.db import open_state
from stagectl.state.ledger import fills
from tests.conftest import SHARED_DATA, Run, home_state

pytestmark = pytest.mark.usefixtures("home_on_both")

HEADER = "timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity\n"
ROWS = [
    "2025-01-01T00:00:00Z,1,SOLUSDT,buy,100.5,2,0.02,USDT,taker\n",
    "2025-01-01T00:01:00Z,2,SOLUSDT,sell,101.25,1.5,-0.0151,USDT,maker\n",
    "2025-01-01T00:02:00Z,3,ETHUSDT,buy,3000.10,0.01,0.00001,ETH,maker\n",
]


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(rows))
    return path


def _count(home: Path) -> int:
    """The fills a reader sees (an unfinished import's rows are in the table, not visible)."""
    with open_state(home_state(home), migrate=False) as db:
        return len(fills(db))


def test_import_records_exact_decimals_and_a_second_import_adds_nothing(
    run: Run, home: Path, tmp_path: Path
) -> None:
    trades = _write(tmp_path / "trades.csv", ROWS)
    first = run(["metrics", "import", trades, "--source", "acct", "--json"])
    assert first.exit_code == 0, first.stderr
    assert first.json()["inserted"] == 3
    second = run(["metrics", "import", trades, "--source", "acct"])
    assert second.exit_code == 0
    assert "0 fills recorded, 3 already recorded" in second.stdout
    assert "nothing new" in second.stdout
    with open_state(home_state(home), migrate=False) as db:
        recorded = fills(db, symbol="SOLUSDT")
    assert [f.trade_id for f in recorded] == ["SOLUSDT:1", "SOLUSDT:2"]
    assert recorded[1].price == Decimal("101.25")
    assert recorded[1].fee == Decimal("-0.0151")
    assert recorded[0].account == "acct"


def test_same_trade_id_on_two_symbols_is_two_fills(run: Run, home: Path, tmp_path: Path) -> None:
    rows = [ROWS[0], ROWS[2].replace(",3,", ",1,")]
    result = run(["metrics", "import", _write(tmp_path / "t.csv", rows), "--json"])
    assert result.json()["inserted"] == 2


def test_a_bad_row_stops_the_import_and_writes_nothing_of_the_file(
    run: Run, home: Path, tmp_path: Path
) -> None:
    run(["metrics", "import", _write(tmp_path / "ok.csv", ROWS[:1])])
    bad = [ROWS[1], "2025-01-01T00:03:00Z,9,SOLUSDT,buy,abc,1,0,USDT,maker\n", ROWS[2]]
    result = run(["metrics", "import", _write(tmp_path / "bad.csv", bad)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"{tmp_path / 'bad.csv'}:3: price: not a number" in result.stderr
    assert _count(home) == 1


def test_skip_bad_writes_the_good_rows_and_exits_1(run: Run, home: Path, tmp_path: Path) -> None:
    bad = [
        ROWS[0],
        "2025-01-01T00:03:00Z,9,SOLUSDT,hold,100,1,0,USDT,maker\n",
        "not-a-time,10,SOLUSDT,buy,100,1,0,USDT,maker\n",
        ROWS[1],
    ]
    result = run(["metrics", "import", _write(tmp_path / "b.csv", bad), "--skip-bad", "--json"])
    assert result.exit_code == 1
    document = result.json()
    assert document["inserted"] == 2
    assert [(b["row"], b["field"]) for b in document["bad_rows"]] == [
        (3, "side"),
        (4, "timestamp"),
    ]
    assert _count(home) == 2


def test_ccxt_json_trades_are_read_exactly(run: Run, home: Path, tmp_path: Path) -> None:
    trades = [
        {
            "id": "77",
            "order": "o-1",
            "timestamp": 1735689600000,
            "datetime": "2025-01-01T00:00:00.000Z",
            "symbol": "SOL/USDT:USDT",
            "side": "sell",
            "takerOrMaker": "maker",
            "price": 189.123,
            "amount": 0.3,
            "cost": 56.7369,
            "fee": {"cost": -0.0011, "currency": "USDT"},
            "fees": [{"cost": -0.0011, "currency": "USDT"}],
        }
    ]
    path = tmp_path / "trades.json"
    path.write_text(json.dumps(trades))
    assert run(["metrics", "import", path, "--source", "binance"]).exit_code == 0
    with open_state(home_state(home), migrate=False) as db:
        (fill,) = fills(db)
    assert (fill.symbol, fill.trade_id, fill.side, fill.liquidity) == (
        "SOLUSDT",
        "SOLUSDT:77",
        "sell",
        "maker",
    )
    assert (fill.qty, fill.price, fill.fee) == (
        Decimal("0.3"),
        Decimal("189.123"),
        Decimal("-0.0011"),
    )
    assert fill.order_id == "o-1"
    assert fill.ts.isoformat() == "2025-01-01T00:00:00+00:00"


PUBLIC_TRADES = SHARED_DATA / "binance_perp_ETHUSDT_trades_2023-02-02.csv.gz"


@pytest.mark.skipif(not PUBLIC_TRADES.is_file(), reason="shared public trades not available")
def test_shared_data_public_trades_import_as_taker_fills(run: Run, home: Path) -> None:
    path = PUBLIC_TRADES
    result = run(["metrics", "import", path, "--source", "sample", "--json"])
    assert result.exit_code == 0, result.stderr
    assert result.json()["inserted"] == 1000
    window = run(["metrics", "window", "--hours", "1", "--until", "2023-02-02T10:00:00Z", "--json"])
    symbol = window.json()["symbols"]["ETHUSDT"]
    assert symbol["fills"] == 1000
    assert symbol["taker_fills"] == 1000


def _big_csv(path: Path, rows: int) -> Path:
    with path.open("w") as handle:
        handle.write(HEADER)
        for k in range(rows):
            side = "buy" if k % 2 else "sell"
            handle.write(
                f"2025-02-01T00:00:{k % 60:02d}.{k % 1000:03d}Z,{k + 1000},SOLUSDT,{side},"
                f"{150 + (k % 97) / 100},{1 + k % 9},0.001,USDT,maker\n"
            )
    return path


def test_a_process_killed_mid_import_leaves_the_ledger_unchanged(
    run: Run, home: Path, tmp_path: Path, home_on_both: str
) -> None:
    if home_on_both == "postgresql":  # 300,000 rows: the merge tests kill one on PostgreSQL
        pytest.skip("test_ledger_import_merge.py kills an import on PostgreSQL")
    run(["metrics", "import", _write(tmp_path / "first.csv", ROWS)])
    big = _big_csv(tmp_path / "big.csv", 300_000)
    env = {**os.environ, "STAGECTL_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "stagectl", "metrics", "import", str(big)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    assert line.startswith("writing 300000 fills")
    time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    process.stderr.close()
    assert _count(home) == 3
    again = run(["metrics", "import", big, "--json"])
    assert again.json()["inserted"] == 300_000


BAD_ROWS = [
    ROWS[0],
    ",9,SOLUSDT,buy,100,1,0,USDT,maker\n",  # 3: timestamp (empty)
    "2025-01-01T00:03:00Z, ,SOLUSDT,buy,100,1,0,USDT,maker\n",  # 4: trade_id
    "2025-02-30T00:00:00.000000Z,10,SOLUSDT,buy,100,1,0,USDT,maker\n",  # 5: no such day
    "2025-01-01T00:04:00Z,11,SOL/USDT,hold,-1,1,0,USDT,maker\n",  # 6: side before price
    "2025-01-01T00:05:00Z,12,SOLUSDT,sell,100,0,0,USDT,maker\n",  # 7: amount
    "2025-01-01T00:06:00Z,13,SOLUSDT,sell,1e5x,1,0,USDT,maker\n",  # 8: price
    "2025-01-01T00:07:00Z,14,SOLUSDT,sell,100,1,NaN,USDT,maker\n",  # 9: fee
    "2025-01-01T00:08:00Z,15,SOLUSDT,sell,100,1,0,USDT,both\n",  # 10: liquidity
    "2025-01-01T00:09:00Z,16,SOLUSDT,sell,100,1,0.1,,maker\n",  # 11: fee_currency
    "1735690200000,17,SOLUSDT,buy,100,1,0.1,BNB,taker\n",  # 12: fee_currency
    "2025-01-01T01:10:00+01:00,18,sol-usdt,BUY,100.50,1,-0.01,usdt,\n",  # good
]
EXPECTED_BAD = [
    (3, "timestamp"),
    (4, "trade_id"),
    (5, "timestamp"),
    (6, "side"),
    (7, "amount"),
    (8, "price"),
    (9, "fee"),
    (10, "liquidity"),
    (11, "fee_currency"),
    (12, "fee_currency"),
]


@pytest.mark.parametrize("quoted", [False, True], ids=["numpy-fast-path", "csv-module-path"])
def test_every_bad_row_is_named_by_row_and_first_failing_field(
    run: Run, home: Path, tmp_path: Path, quoted: bool
) -> None:
    rows = list(BAD_ROWS)
    if quoted:  # a quote sends the file through the csv module: same answers
        rows[0] = rows[0].replace(",SOLUSDT,", ',"SOLUSDT",')
    path = _write(tmp_path / "bad.csv", rows)
    stopped = run(["metrics", "import", path])
    assert stopped.exit_code == 2
    assert stopped.stderr.startswith(f"stagectl: {path}:3: timestamp: ")
    assert "(9 more bad rows)" in stopped.stderr
    result = run(["metrics", "import", path, "--skip-bad", "--json"])
    assert result.exit_code == 1
    document = result.json()
    assert [(b["row"], b["field"]) for b in document["bad_rows"]] == EXPECTED_BAD
    assert document["inserted"] == 2
    with open_state(home_state(home), migrate=False) as db:
        last = fills(db)[-1]
    assert (last.trade_id, last.side, last.price, last.fee, last.fee_currency) == (
        "SOLUSDT:18",
        "buy",
        Decimal("100.50"),
        Decimal("-0.01"),
        "USDT",
    )
    assert last.ts.isoformat() == "2025-01-01T00:10:00+00:00"
    assert last.liquidity is None


@pytest.mark.parametrize(
    ("body", "line", "found"),
    [
        ("2025-01-01T00:00:00Z,1,SOLUSDT,buy,100,2\n", 2, 6),
        (ROWS[0] + "\n" + ROWS[1], 3, 0),
        (ROWS[0] + ROWS[1].rstrip("\n") + ",extra", 3, 10),
    ],
    ids=["short", "blank", "long-last-line-without-newline"],
)
def test_a_row_of_the_wrong_width_stops_the_import_at_its_line(
    run: Run, home: Path, tmp_path: Path, body: str, line: int, found: int
) -> None:
    path = tmp_path / "w.csv"
    path.write_text(HEADER + body)
    result = run(["metrics", "import", path])
    assert result.exit_code == 2
    assert result.stderr == f"stagectl: {path}:{line}: expected 9 fields, found {found}\n"


def test_gzip_and_epoch_millisecond_times_are_read(run: Run, home: Path, tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "t.csv.gz"
    path.write_bytes(
        gzip.compress((HEADER + ROWS[0].replace(ROWS[0][:20], "1735689600123")).encode())
    )
    assert run(["metrics", "import", path]).exit_code == 0
    with open_state(home_state(home), migrate=False) as db:
        (fill,) = fills(db)
    assert fill.ts.isoformat() == "2025-01-01T00:00:00.123000+00:00"
