"""metrics import refuses hostile trade files with exit 2, one line naming FILE:ROW and the
field, and writes nothing: numbers that are huge, not ASCII or not finite, times outside
2009-01-01 .. now + 1 day, ids with control or bidirectional characters, JSON nested too
deep or holding a 5,000-digit integer, corrupt gzip (docs/ledger.md, "What a trade file
may hold")."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stagectl.config.home import Home
from stagectl.errors import InputError
from stagectl.services.ledger import importer
from stagectl.state.db import open_state
from tests.conftest import Run

HEADER = "timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity\n"
GOOD = "2025-01-01T00:00:00Z,1,ETHUSDT,buy,2000,0.1,0.01,USDT,taker\n"
TRADE: dict[str, Any] = {
    "id": "1",
    "timestamp": 1735689600000,
    "symbol": "ETH/USDT",
    "side": "buy",
    "price": 2000,
    "amount": 0.1,
    "takerOrMaker": "taker",
    "fee": {"cost": 0.01, "currency": "USDT"},
}


def _stored_fills(home: Path) -> int:
    state = Home.resolve(home).state_path
    if not state.exists():
        return 0
    with open_state(state) as db:
        return int(db.conn.execute("SELECT count(*) FROM fills").fetchone()[0])


def _refused(run: Run, home: Path, path: Path, where: str, field: str | None) -> str:
    """Import ``path``: exit 2, one error line at ``where`` (and ``field``), no fill."""
    result = run(["metrics", "import", path])
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    prefix = f"stagectl: {where}: " + (f"{field}: " if field else "")
    assert lines[0].startswith(prefix), lines[0]
    assert "Traceback" not in result.stderr
    assert _stored_fills(home) == 0
    return lines[0]


def _csv(tmp_path: Path, row: str) -> Path:
    path = tmp_path / "trades.csv"
    path.write_text(HEADER + GOOD.replace(",1,", ",0,") + row, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("row", "field", "says"),
    [
        (GOOD.replace(",0.1,", "," + "9" * 400 + ","), "amount", "at most 40 characters"),
        (GOOD.replace(",2000,", ",２０００,"), "price", "not a number"),
        (GOOD.replace(",2000,", ",٢٠٠٠,"), "price", "not a number"),
        (GOOD.replace(",2000,", ",2_000,"), "price", "not a number"),
        (GOOD.replace(",2000,", ",1e16,"), "price", "out of range"),
        (GOOD.replace(",2000,", ",1e999999999999,"), "price", "out of range"),
        (GOOD.replace(",0.1,", ",0.0000000000000000001,"), "amount", "decimal places"),
        (GOOD.replace(",0.01,", ",Infinity,"), "fee", "not a finite number"),
        (GOOD.replace(",0.01,", ",-NaN,"), "fee", "not a finite number"),
        (GOOD.replace("2025-01-01T00:00:00Z", "9999-12-31T00:00:00Z"), "timestamp", "after"),
        (GOOD.replace("2025-01-01T00:00:00Z", "2008-12-31T23:59:59Z"), "timestamp", "before"),
        (GOOD.replace("2025-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"), "timestamp", ""),
        (GOOD.replace("2025-01-01T00:00:00Z", "１７３５６８９６００１２３"), "timestamp", "ISO"),
        (GOOD.replace(",1,", ",1\u202e0,"), "trade_id", "bidirectional"),
        (GOOD.replace(",1,", ",1\x1b[2J,"), "trade_id", "control"),
        (GOOD.replace(",1,", ",a b,"), "trade_id", "spaces"),
        (GOOD.replace(",1,", "," + "7" * 129 + ","), "trade_id", "longer than 128"),
        (GOOD.replace("ETHUSDT", "ＥＴＨＵＳＤＴ"), "symbol", "ASCII"),
        (GOOD.replace(",USDT,", ",US\u200fDT,"), "fee_currency", "not a currency"),
    ],
    ids=[
        "400-nines",
        "full-width-digits",
        "arabic-indic-digits",
        "underscore",
        "above-1e15",
        "huge-exponent",
        "19-places",
        "infinity",
        "nan",
        "year-9999",
        "before-2009",
        "epoch-zero",
        "full-width-epoch-ms",
        "right-to-left-override",
        "escape-sequence",
        "space",
        "129-chars",
        "full-width-symbol",
        "bidi-mark-currency",
    ],
)
def test_a_hostile_csv_cell_is_refused_at_its_row_and_field(
    run: Run, home: Path, tmp_path: Path, row: str, field: str, says: str
) -> None:
    path = _csv(tmp_path, row)
    line = _refused(run, home, path, f"{path}:3", field)
    assert says in line
    assert "\u202e" not in line and "\x1b" not in line


def test_skip_bad_imports_the_good_rows_of_a_hostile_file(
    run: Run, home: Path, tmp_path: Path
) -> None:
    path = _csv(tmp_path, GOOD.replace(",2000,", ",２０００,"))
    result = run(["metrics", "import", path, "--skip-bad", "--json"])
    assert result.exit_code == 1
    assert result.json()["inserted"] == 1
    assert [b["field"] for b in result.json()["bad_rows"]] == ["price"]


def _json(tmp_path: Path, text: str, name: str = "trades.json") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_5000_digit_json_integer_is_refused_at_its_row_and_field(
    run: Run, home: Path, tmp_path: Path
) -> None:
    text = json.dumps([TRADE, {**TRADE, "id": "2", "amount": "AMOUNT"}])
    path = _json(tmp_path, text.replace('"AMOUNT"', "9" * 5000))
    line = _refused(run, home, path, f"{path}:2", "amount")
    assert len(line) < 300


def test_a_5000_digit_json_timestamp_is_refused_at_its_row_and_field(
    run: Run, home: Path, tmp_path: Path
) -> None:
    path = _json(tmp_path, json.dumps([{**TRADE, "timestamp": "STAMP"}]))
    path.write_text(path.read_text().replace('"STAMP"', "1" * 5000))
    _refused(run, home, path, f"{path}:1", "timestamp")


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deeply_nested_json_is_refused_before_parsing(
    run: Run, home: Path, tmp_path: Path, depth: int
) -> None:
    path = _json(tmp_path, "[" * depth + "]" * depth)
    line = _refused(run, home, path, f"{path}:1", None)
    assert "nested deeper than 64" in line


def test_brackets_and_escaped_quotes_inside_json_strings_do_not_count_as_nesting(
    run: Run, home: Path, tmp_path: Path
) -> None:
    trade = {**TRADE, "info": {"note": '[[[[ \\" {{{{ ' * 40 + "\\"}}
    path = _json(tmp_path, json.dumps([trade]))
    result = run(["metrics", "import", path])
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": "NaN"}, "price"),
        ({"price": "-Infinity"}, "price"),
        ({"price": [2000]}, "price"),
        ({"id": True}, "trade_id"),
        ({"side": {"buy": 1}}, "side"),
        ({"fees": 5}, "fee"),
        ({"fee": [0.01, "USDT"]}, "fee"),
        ({"fee": {"cost": 0.01, "currency": ["USDT"]}}, "fee"),
        ({"fee": {"cost": "1" * 5000, "currency": "USDT"}}, "fee"),
        ({"amount": 1e300}, "amount"),
    ],
    ids=[
        "nan",
        "minus-infinity",
        "list-price",
        "boolean-id",
        "object-side",
        "fees-not-a-list",
        "fee-not-an-object",
        "currency-not-a-string",
        "huge-fee-cost",
        "1e300",
    ],
)
def test_a_json_value_of_the_wrong_kind_is_refused_at_its_row_and_field(
    run: Run, home: Path, tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    text = json.dumps([TRADE, {**TRADE, "id": "2", **change}])
    path = _json(tmp_path, text.replace('"NaN"', "NaN").replace('"-Infinity"', "-Infinity"))
    _refused(run, home, path, f"{path}:2", field)


@pytest.mark.parametrize("name", ["trades.csv.gz", "trades.json.gz"])
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_gzip_file_is_refused_naming_the_file(
    run: Run, home: Path, tmp_path: Path, name: str, damage: str
) -> None:
    body = (HEADER + GOOD * 50) if name.startswith("trades.csv") else json.dumps([TRADE] * 50)
    packed = gzip.compress(body.encode())
    path = tmp_path / name
    if damage == "truncated":
        path.write_bytes(packed[: len(packed) // 2])
    else:
        path.write_bytes(packed[:10] + b"not deflate data at all" * 4)
    line = _refused(run, home, path, str(path), None)
    assert "gzip" in line


def test_a_csv_naming_a_column_twice_is_refused_at_the_header(
    run: Run, home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "t.csv"
    path.write_text(HEADER.rstrip("\n") + ",qty\n" + GOOD.rstrip("\n") + ",1\n")
    line = _refused(run, home, path, f"{path}:1", None)
    assert "named twice: amount" in line


def test_a_trade_may_be_stamped_up_to_a_day_after_now(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(HEADER + GOOD.replace("2025-01-01T00:00:00Z", "2025-01-01T23:59:00Z"))

    def import_at(now: datetime) -> importer.ImportResult:
        request = importer.ImportRequest(path=path)
        return importer.run(request, home=Home.resolve(home), clock=lambda: now)

    with pytest.raises(InputError, match="timestamp: after 2025-01-01T23:00Z"):
        import_at(datetime(2024, 12, 31, 23, 0, tzinfo=UTC))
    assert import_at(datetime(2025, 1, 1, 0, 0, tzinfo=UTC)).inserted == 1


@pytest.mark.parametrize("account", ["a\u202eb", "desk\x00", "x" * 129])
def test_an_unsafe_account_name_is_refused(
    run: Run, home: Path, tmp_path: Path, account: str
) -> None:
    path = _csv(tmp_path, "")
    result = run(["metrics", "import", path, "--source", account])
    assert result.exit_code == 2
    assert result.stderr.startswith("stagectl: --source: ")
    assert _stored_fills(home) == 0
