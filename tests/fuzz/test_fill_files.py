"""Hostile fill files through ``stagectl metrics import`` (tests/fuzz/harness.py).

Good trades are generated, then mutated the ways a broken export or an attacker would:
numbers that are huge, not finite, not ASCII or not numbers; times out of range; control
and bidirectional characters in ids, symbols and currencies; a trade id again with other
values (in the file, or already in the ledger: most examples start from a ledger holding
trades 1-3 of ETHUSDT, the others from an empty home); missing, extra and doubled
columns; a byte-order mark, quotes, CRLF, cut bytes; JSON values of the wrong kind,
5,000-digit integers and deep nesting; gzip whole, truncated or garbage. Each example is
judged by the harness's contract (exit 0, 1 or 2; no traceback; on exit 2 one error line
and no file written); on exit 2 the ledger's tables must be exactly as before; on exit 0
or 1 the seeded fills must be unchanged, every recorded value within what a trade may
hold, and every good row of the file recorded with its values (so two rows of one trade
id with other values, or a row that contradicts the ledger, cannot both pass;
docs/ledger.md).
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stagectl.data.trade_files import infer_format, read_trades
from stagectl.domain.fill_identity import TRADE_VALUE_FIELDS, differing_fields
from tests.fuzz.harness import assert_clean_outcome, invoke, scratch_home, snapshot

COLUMNS = (
    "timestamp",
    "trade_id",
    "symbol",
    "side",
    "price",
    "amount",
    "fee",
    "fee_currency",
    "liquidity",
    "order_id",
)
SEED_TRADES = (
    "timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity,order_id\n"
    "2024-03-01T00:00:00Z,1,ETHUSDT,buy,3000,0.5,0.1,USDT,taker,o-1\n"
    "2024-03-01T00:01:00Z,2,ETHUSDT,sell,3010,0.25,0,,maker,\n"
    "2024-03-01T00:02:00Z,3,ETHUSDT,buy,2999.5,1,-0.01,USDT,maker,o-3\n"
)
SEED_ROWS = [line.split(",") for line in SEED_TRADES.splitlines()[1:]]
HOSTILE_NUMBERS = (
    "NaN",
    "-inf",
    "Infinity",
    "sNaN",
    "9" * 400,
    "1e999999",
    "1e16",
    "-1",
    "0",
    "0.0000000000000000001",
    "２０００",
    "٣٠٠٠",
    "1_000",
    "0x10",
    "1,5",
    "",
    "1e-5",
    " 7 ",
)
HOSTILE_TIMES = (
    "9999-12-31T00:00:00Z",
    "2008-12-31T23:59:59Z",
    "1970-01-01T00:00:00.000000Z",
    "2025-02-30T00:00:00Z",
    "2025-13-01",
    "１７３５６８９６００１２３",
    "99999999999999999999",
    "-1",
    "yesterday",
    "",
    "1735689600000",
)
HOSTILE_CHARS = ("\u202e", "\u200f", "\u2066", "\ufeff", "\x00", "\x1b", "\x7f", "\t", " ", "é")
HOSTILE_JSON = (
    "9" * 5000,
    "1" + "0" * 4400,
    "1e999999",
    "NaN",
    "-Infinity",
    "true",
    "null",
    "{}",
    "[]",
    "[" * 80 + "]" * 80,
    '"\\u202e1"',
    '"\\u0000"',
    '"２０００"',
    "-0.0",
)


@pytest.fixture(scope="module")
def seeded_state() -> Iterator[Path]:
    """A state directory whose ledger holds trades 1-3 of ETHUSDT (account ``import``)."""
    with tempfile.TemporaryDirectory(prefix="stagectl-fuzz-seed-") as root:
        home = Path(root)
        trades = home / "seed.csv"
        trades.write_text(SEED_TRADES)
        result = invoke(home, ["metrics", "import", trades])
        assert result.exit_code == 0, result.stderr
        yield home / "state"


def _ledger(home: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the ledger's tables (none: no state database yet)."""
    tables = ("fills", "fill_totals", "fill_imports", "fill_import_totals")
    state = home / "state" / "stagectl.db"
    if not state.exists():
        return {t: [] for t in tables}
    with sqlite3.connect(state) as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


def _judge(seeded_state: Path | None, name: str, content: bytes, extra: list[str]) -> None:
    """Import ``content`` as ``name`` into a home seeded with the ledger (or an empty one,
    without ``seeded_state``); judge it."""
    with scratch_home() as home:
        if seeded_state is not None:
            shutil.copytree(seeded_state, home / "state")
        path = home.parent / name  # outside the home: the home's files are the outputs
        path.write_bytes(content)
        before, ledger = snapshot(home), _ledger(home)
        result = invoke(home, ["metrics", "import", path, *extra])
        event(f"exit {result.exit_code}")
        assert_clean_outcome(result, home, before)
        after = _ledger(home)
        if result.exit_code == 2:
            assert after == ledger, result.stderr
        else:
            assert set(ledger["fills"]) <= set(after["fills"])
            _assert_safe_fills(home)
            _assert_file_recorded(home, path)


def _assert_file_recorded(home: Path, path: Path) -> None:
    """Every good row of ``path`` is in the ledger (account ``import``) with its values."""
    columns = read_trades(path, infer_format(path, None), symbol=None)
    bad = {b.row for b in columns.bad}
    fields = ", ".join(TRADE_VALUE_FIELDS)
    with sqlite3.connect(home / "state" / "stagectl.db") as conn:
        stored = {
            key: dict(zip(TRADE_VALUE_FIELDS, values, strict=True))
            for key, *values in conn.execute(
                f"SELECT trade_id, {fields} FROM fills WHERE exchange = 'import'"
            )
        }
    for k, row in enumerate(columns.row_numbers.tolist()):
        if row in bad:
            continue
        symbol = columns.symbol[k]
        values = {
            "symbol": symbol,
            "side": columns.side[k],
            "qty": columns.qty[k],
            "price": columns.price[k],
            "ts": columns.ts[k],
            "fee": columns.fee[k],
            "fee_currency": columns.fee_currency[k],
            "liquidity": columns.liquidity[k],
            "exchange_order_id": columns.order_id[k],
        }
        recorded = stored[f"{symbol}:{columns.trade_id[k]}"]
        assert differing_fields(values, recorded) == (), (row, values, recorded)


_SAFE_TEXT = re.compile(r"[!-~]*")


def _assert_safe_fills(home: Path) -> None:
    """Every recorded fill holds what a trade may: ASCII text without spaces or control
    characters, bounded numbers, a time from 2009-01-01 to a day from now."""
    latest = (datetime.now(UTC) + timedelta(days=1, minutes=5)).strftime("%Y-%m-%dT%H:%M")
    with sqlite3.connect(home / "state" / "stagectl.db") as conn:
        rows = conn.execute(
            "SELECT trade_id, symbol, exchange_order_id, fee_currency, qty, price, fee, ts"
            " FROM fills"
        ).fetchall()
    for *texts, qty, price, fee, ts in rows:
        for text in texts:
            assert _SAFE_TEXT.fullmatch(text or ""), texts
        for number in (qty, price, fee):
            assert number.isascii() and abs(Decimal(number)) <= Decimal("1e15"), number
        assert "2009-01-01" <= ts <= latest, ts


def _decimal_text(draw: st.DrawFn, low: int, high: int, places: int) -> str:
    whole = draw(st.integers(low, high))
    fraction = draw(st.integers(0, 10**places - 1))
    return f"{whole}.{fraction:0{places}d}" if places else str(whole)


@st.composite
def trades(draw: st.DrawFn) -> list[dict[str, str]]:
    """1-6 good trades, ids 1-60 of two symbols (1-3 of ETHUSDT are in the seeded ledger,
    with other values: a conflict)."""
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        day, second = draw(st.integers(1, 28)), draw(st.integers(0, 86_399))
        stamp = f"2024-03-{day:02d}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
        fee = draw(st.sampled_from(["0", "0.1", "-0.01", ""]))
        rows.append(
            {
                "timestamp": stamp,
                "trade_id": str(draw(st.integers(1, 60))),
                "symbol": draw(st.sampled_from(["ETHUSDT", "ETH/USDT", "SOLUSDT"])),
                "side": draw(st.sampled_from(["buy", "sell", "SELL"])),
                "price": _decimal_text(draw, 1, 5000, draw(st.integers(0, 3))),
                "amount": _decimal_text(draw, 0, 20, 3).replace("0.000", "0.001"),
                "fee": fee,
                "fee_currency": "USDT" if fee not in ("", "0") else "",
                "liquidity": draw(st.sampled_from(["maker", "taker", ""])),
                "order_id": draw(st.sampled_from(["", "o-1", "o-2"])),
            }
        )
    return rows


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A trades CSV from good trades with 0-3 mutations of cells, rows, columns or bytes."""
    rows = draw(trades())
    columns = list(COLUMNS)
    for _ in range(draw(st.integers(0, 3))):
        row = rows[draw(st.integers(0, len(rows) - 1))]
        kind = draw(
            st.sampled_from(
                ["number", "time", "char", "repeat", "conflict", "seeded", "drop", "extra", "twice"]
            )
        )
        if kind == "number":
            row[draw(st.sampled_from(["price", "amount", "fee"]))] = draw(
                st.sampled_from(HOSTILE_NUMBERS)
            )
        elif kind == "time":
            row["timestamp"] = draw(st.sampled_from(HOSTILE_TIMES))
        elif kind == "char":
            name = draw(st.sampled_from(["trade_id", "symbol", "fee_currency", "order_id", "side"]))
            at = draw(st.integers(0, len(row[name])))
            row[name] = row[name][:at] + draw(st.sampled_from(HOSTILE_CHARS)) + row[name][at:]
        elif kind == "repeat":
            rows.append(dict(row))
        elif kind == "conflict":
            rows.append({**row, "price": str(draw(st.integers(1, 9))), "side": "buy"})
        elif kind == "seeded":  # a trade of the ledger again: the same, or changed
            seeded = dict(zip(COLUMNS, draw(st.sampled_from(SEED_ROWS)), strict=True))
            if draw(st.booleans()):
                seeded[draw(st.sampled_from(["price", "side", "liquidity", "order_id"]))] = "1"
            rows.append(seeded)
        elif kind == "drop" and len(columns) > 4:
            columns.remove(draw(st.sampled_from(columns)))
        elif kind == "extra":
            columns.append("note")
        elif kind == "twice":
            columns.append(draw(st.sampled_from(columns)))
    lines = [",".join(columns)] + [",".join(r.get(c, "x") for c in columns) for r in rows]
    text = "\n".join(lines) + draw(st.sampled_from(["\n", ""]))
    if draw(st.booleans()):
        text = text.replace(",ETHUSDT,", ',"ETHUSDT",')  # through the csv module
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    data = text.encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


def _ccxt(row: dict[str, str]) -> dict[str, Any]:
    fee = row["fee"] or "0"
    trade: dict[str, Any] = {
        "id": row["trade_id"],
        "order": row["order_id"] or None,
        "datetime": row["timestamp"],
        "symbol": row["symbol"],
        "side": row["side"],
        "takerOrMaker": row["liquidity"] or None,
        "price": float(row["price"]),
        "amount": float(row["amount"]),
        "fee": {"cost": float(fee), "currency": row["fee_currency"] or "USDT"},
    }
    return trade


@st.composite
def json_files(draw: st.DrawFn) -> bytes:
    """A ccxt trades JSON list from good trades with 0-3 raw literals swapped in for
    values (huge integers, NaN, wrong kinds, nesting), or the whole document broken."""
    document = [_ccxt(row) for row in draw(trades())]
    swaps: dict[str, str] = {}
    for k in range(draw(st.integers(0, 3))):
        trade = document[draw(st.integers(0, len(document) - 1))]
        key = draw(st.sampled_from(["id", "price", "amount", "datetime", "symbol", "fee", "side"]))
        marker = f"@@{k}@@"
        trade[key] = marker
        swaps[json.dumps(marker)] = draw(st.sampled_from(HOSTILE_JSON))
    text = json.dumps(document)
    for marker, literal in swaps.items():
        text = text.replace(marker, literal)
    shape = draw(st.sampled_from(["list", "list", "list", "deep", "object", "cut"]))
    if shape == "deep":
        depth = draw(st.sampled_from([65, 1_000, 100_000]))
        text = "[" * depth + text + "]" * depth
    elif shape == "object":
        text = json.dumps({"trades": "x"})
    elif shape == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode()


def _packed(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` gzipped whole, truncated, or followed by garbage."""
    packed = gzip.compress(data)
    damage = draw(st.sampled_from(["whole", "truncated", "garbage"]))
    if damage == "truncated":
        return packed[: draw(st.integers(0, len(packed) - 1))]
    if damage == "garbage":
        return packed[:10] + draw(st.binary(min_size=1, max_size=64))
    return packed


FUZZ = settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=csv_files(), skip_bad=st.booleans(), empty=st.integers(0, 3))
def test_hostile_csv_fill_files(
    seeded_state: Path, data: bytes, skip_bad: bool, empty: int
) -> None:
    seed = None if empty == 0 else seeded_state
    _judge(seed, "trades.csv", data, ["--skip-bad"] if skip_bad else [])


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(data=json_files(), skip_bad=st.booleans(), empty=st.integers(0, 3))
def test_hostile_ccxt_json_fill_files(
    seeded_state: Path, data: bytes, skip_bad: bool, empty: int
) -> None:
    seed = None if empty == 0 else seeded_state
    _judge(seed, "trades.json", data, ["--skip-bad"] if skip_bad else [])


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(["csv", "json"]))
def test_hostile_gzip_fill_files(seeded_state: Path, data: st.DataObject, fmt: str) -> None:
    content = data.draw(csv_files() if fmt == "csv" else json_files())
    packed = _packed(data.draw, content)
    _judge(seeded_state, f"trades.{fmt}.gz", packed, [])
