"""Hostile candle CSV files fed to regime-analyze, metrics export-windows and backtest --data.

Each example starts from a small well-formed 1-minute (or 1-hour, for the backtest) OHLCV
file and breaks it in one or more ways: bad numbers, NaN and infinities, huge values, digits
from other scripts, rows out of order or repeated, wrong or missing columns, a byte-order
mark, a ``symbol`` column, a truncated or overwritten gzip stream, a name that tells another
symbol (or none). Whatever the file holds, the command is judged by ``tests.fuzz.harness``: an exit
code in {0, 1, 2}, no traceback, one error line on bad input and nothing written then; and
``--json`` prints one JSON document when the command succeeds.
"""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagectl.data import SAMPLE_DIR
from tests.fuzz.harness import assert_clean_outcome, invoke, scratch_home, snapshot

COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
T0 = datetime(2025, 5, 5, tzinfo=UTC)
SYMBOLS = ("SOLUSDT", "ETHUSDT")
HOSTILE_NUMBERS = (
    "",
    " ",
    "abc",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e400",
    "-1e308",
    "1e308",
    "9" * 400,
    "0",
    "-1",
    "1,5",
    "0x1A",
    "١٢٣٫٤",  # Arabic-Indic digits
    "１２３",  # full-width digits
    "१२३",  # Devanagari digits
    "None",
    "True",
    '"12"',
)
HOSTILE_TIMES = (
    "",
    "yesterday",
    "2025-13-01T00:00:00Z",
    "2025-05-05T25:00:00Z",
    "٢٠٢٥-٠٥-٠٥T00:00:00Z",
    "１７４６４０３２００",
    "1e30",
    "-1",
    "nan",
    "2025-05-05",
    "1746403200000",
)
SYMBOL_CELLS = ("SOLUSDT", "ETHUSDT", "SOL/USDT:USDT", "", "sol usdt", "☃")


@dataclass(frozen=True)
class CandleFile:
    name: str
    content: bytes


def _rows(count: int, step: timedelta, drift: list[float]) -> list[list[str]]:
    """Well-formed bars: a walk around 150 with high/low around open/close."""
    rows, price = [], 150.0
    for k in range(count):
        close = max(1.0, price + drift[k % len(drift)])
        high, low = max(price, close) + 0.05, min(price, close) - 0.05
        stamp = (T0 + k * step).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append([stamp, f"{price:.2f}", f"{high:.2f}", f"{low:.2f}", f"{close:.2f}", "12.5"])
        price = close
    return rows


def _put(row: list[str], column: int, value: str) -> None:
    """Set a cell when the row still has that column (an earlier mutation may have cut it)."""
    if column < len(row):
        row[column] = value


@st.composite
def candle_files(draw: st.DrawFn, *, interval: str = "1m", symbol: str = "SOLUSDT") -> CandleFile:
    step = timedelta(minutes=1) if interval == "1m" else timedelta(hours=1)
    drift = draw(st.lists(st.floats(-2, 2, allow_nan=False), min_size=1, max_size=8))
    rows = _rows(draw(st.integers(2, 40)), step, drift)
    header = list(COLUMNS)
    mutations = draw(
        st.lists(
            st.sampled_from(
                [
                    "number",
                    "time",
                    "shuffle",
                    "duplicate",
                    "drop_column",
                    "rename_column",
                    "extra_column",
                    "symbol_column",
                    "gap",
                    "epoch",
                    "short_row",
                    "one_or_no_row",
                ]
            ),
            max_size=3,
        )
    )
    for mutation in mutations:
        if mutation == "number" and rows:
            row = rows[draw(st.integers(0, len(rows) - 1))]
            _put(row, draw(st.integers(1, 5)), draw(st.sampled_from(HOSTILE_NUMBERS)))
        elif mutation == "time" and rows:
            _put(rows[draw(st.integers(0, len(rows) - 1))], 0, draw(st.sampled_from(HOSTILE_TIMES)))
        elif mutation == "shuffle":
            rows = draw(st.permutations(rows))
        elif mutation == "duplicate" and rows:
            copy = list(rows[draw(st.integers(0, len(rows) - 1))])
            if draw(st.booleans()):
                _put(copy, 5, "99.5")  # the same bar with another volume
            rows.insert(draw(st.integers(0, len(rows))), copy)
        elif mutation == "drop_column":
            gone = draw(st.integers(0, len(header) - 1))
            header.pop(gone)
            rows = [r[:gone] + r[gone + 1 :] for r in rows]
        elif mutation == "rename_column":
            header[draw(st.integers(0, len(header) - 1))] = draw(
                st.sampled_from(["Close", "ts", "open_time", "prix", "", "symbol", "volume"])
            )
        elif mutation == "extra_column":
            header.append(draw(st.sampled_from(["note", "trades", "close"])))
            rows = [[*r, "x"] for r in rows]
        elif mutation == "symbol_column":
            header.append("symbol")
            cells = st.sampled_from(SYMBOL_CELLS)
            rows = [[*r, draw(cells)] for r in rows]
        elif mutation == "gap" and len(rows) > 2:
            cut = draw(st.integers(1, len(rows) - 1))
            later = _rows(len(rows) - cut, step, drift)
            shift = draw(st.sampled_from([7, 400, 900_000]))
            for k, row in enumerate(later):
                row[0] = (T0 + (cut + shift + k) * step).strftime("%Y-%m-%dT%H:%M:%SZ")
            rows = rows[:cut] + later
        elif mutation == "epoch":
            for row in rows:
                if not row:
                    continue
                try:
                    moment = datetime.strptime(row[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                except ValueError:
                    continue
                row[0] = str(int(moment.timestamp() * 1000))
        elif mutation == "one_or_no_row":
            rows = rows[: draw(st.integers(0, 1))]
        elif mutation == "short_row" and rows:
            row = rows[draw(st.integers(0, len(rows) - 1))]
            if row:
                row.pop()
    text = "\n".join(",".join(r) for r in [header, *rows]) + draw(
        st.sampled_from(["\n", "", "\n\n"])
    )
    if draw(st.booleans()):
        text = "\ufeff" + text
    data = text.encode()
    compressed = draw(st.booleans())
    if compressed:
        data = gzip.compress(data, mtime=0)
        damage = draw(st.sampled_from(["none", "none", "truncate", "overwrite"]))
        if damage == "truncate":
            data = data[: draw(st.integers(min(10, len(data) - 1), len(data) - 1))]
        elif damage == "overwrite" and len(data) > 20:  # inside the deflate stream
            at = draw(st.integers(10, len(data) - 9))
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at + 8 :]
    elif draw(st.integers(0, 19)) == 0:
        data = draw(st.binary(min_size=1, max_size=64))  # not a CSV at all
    told = draw(st.sampled_from([symbol, symbol, symbol, "ETHUSDT", "BTCUSDT", None]))
    suffix = ".csv.gz" if compressed else ".csv"
    if told is None:
        name = f"candles{suffix}"
    else:
        style = draw(st.sampled_from(["shared", "simple"]))
        name = (
            f"binance_perp_{told}_{interval}_ohlcv{suffix}"
            if style == "shared"
            else f"{told}_{interval}{suffix}"
        )
    return CandleFile(name, data)


def _write(folder: Path, candle: CandleFile) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / candle.name
    path.write_bytes(candle.content)
    return path


def _judge(home: Path, args: list[str | Path], *, json_out: bool) -> None:
    before = snapshot(home)
    result = invoke(home, args)
    assert_clean_outcome(result, home, before)
    if json_out and result.exit_code == 0:
        json.loads(result.stdout)  # exactly one JSON document, nothing else


@pytest.fixture(scope="module")
def ledger_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state database with SOLUSDT fills on 2025-05-05, copied into each example's home."""
    home = tmp_path_factory.mktemp("ledger")
    rows = ["timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity"]
    for k in range(30):
        stamp = (T0 + timedelta(seconds=37 * k + 5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(f"{stamp},{k},SOLUSDT,{'buy' if k % 3 else 'sell'},150.{k % 9},0.1,0,,maker")
    fills = home.parent / f"{home.name}-fills.csv"
    fills.write_text("\n".join(rows) + "\n")
    assert invoke(home, ["metrics", "import", fills]).exit_code == 0
    return home / "state" / "stagectl.db"


FUZZ = settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    files=st.lists(candle_files(), min_size=1, max_size=2),
    symbol=st.sampled_from([None, *SYMBOLS]),
)
def test_regime_analyze_judges_hostile_candle_files(
    files: list[CandleFile], symbol: str | None
) -> None:
    with scratch_home() as home:
        inputs = home.parent / "in"
        paths = [_write(inputs / str(k), f) for k, f in enumerate(files)]
        args: list[str | Path] = ["regime-analyze", "--json", "--export", home / "out"]
        for path in paths:
            args += ["--candles", path]
        if symbol is not None:
            args += ["--symbol", symbol]
        _judge(home, args, json_out=True)


@FUZZ
@given(candle=candle_files(), symbol=st.sampled_from([None, *SYMBOLS]))
def test_export_windows_judges_hostile_candle_files(
    ledger_db: Path, candle: CandleFile, symbol: str | None
) -> None:
    with scratch_home() as home:
        (home / "state").mkdir()
        shutil.copy(ledger_db, home / "state" / "stagectl.db")
        path = _write(home.parent / "in", candle)
        args: list[str | Path] = ["metrics", "export-windows", "--window", "60"]
        args += ["--candles", path, "--out", home / "windows.csv"]
        if symbol is not None:
            args += ["--symbol", symbol]
        _judge(home, args, json_out=False)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(candle=candle_files(interval="1h"))
def test_backtest_judges_hostile_candle_files_in_its_data_directory(candle: CandleFile) -> None:
    with scratch_home() as home:
        data = home.parent / "data"
        _write(data, candle)
        funding = "binance_perp_SOLUSDT_8h_funding.csv.gz"
        shutil.copy(SAMPLE_DIR / funding, data / funding)
        _judge(home, ["backtest", "--data", data, "--symbol", "SOLUSDT", "--json"], json_out=True)
