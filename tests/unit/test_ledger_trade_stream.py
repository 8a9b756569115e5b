"""``metrics import`` reads a trades CSV block by block (data.trade_files): the chunks equal a
whole-file read whatever the block size, errors name the same line, and the whole file is
never held in memory."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from stagectl.data import trade_files
from stagectl.data.trade_files import open_trade_file, read_trades
from stagectl.errors import InputError

HEADER = "timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity\n"
BOM = "\ufeff"


def rows(n: int) -> str:
    return "".join(
        f"2025-01-01T00:{k // 60 % 60:02d}:{k % 60:02d}.000000Z,{k},SOLUSDT,"
        f"{'buy' if k % 3 else 'sell'},{100 + k % 7}.5,0.{k % 9 + 1},-0.01,USDT,maker\n"
        for k in range(n)
    )


def chunked(path: Path, rows_per_chunk: int) -> tuple[int, str, list[list[str]]]:
    opened = open_trade_file(path, "csv", symbol=None, rows_per_chunk=rows_per_chunk)
    chunks = list(opened.chunks)
    columns = [
        [str(v) for v in np.concatenate([c.trade_id for c in chunks])],
        [str(v) for v in np.concatenate([c.qty for c in chunks])],
        [str(v) for v in np.concatenate([c.row_numbers for c in chunks])],
    ]
    return opened.rows, opened.content_sha256, columns


@pytest.mark.parametrize("block", [1, 2, 5, 64, 1 << 23])
@pytest.mark.parametrize(
    ("text", "rows_per_chunk"),
    [
        (HEADER + rows(23), 4),
        (HEADER + rows(24), 4),
        (HEADER + rows(24).rstrip("\n"), 4),
        (HEADER + rows(23).rstrip("\n"), 4),
        (BOM + HEADER + rows(9), 10),
        (HEADER, 3),
        (HEADER + rows(1).rstrip("\n"), 1),
    ],
)
def test_blocks_give_the_whole_file_s_rows_and_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int, text: str, rows_per_chunk: int
) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode())
    whole = read_trades(path, "csv", symbol=None)
    monkeypatch.setattr(trade_files, "_BLOCK_BYTES", block)
    count, digest, columns = chunked(path, rows_per_chunk)
    assert count == len(whole)
    assert digest == trade_files.hashlib.sha256(text.encode()).hexdigest()
    assert columns == [
        [str(v) for v in whole.trade_id],
        [str(v) for v in whole.qty],
        [str(v) for v in whole.row_numbers],
    ]


@pytest.mark.parametrize("block", [3, 1 << 23])
def test_a_line_of_the_wrong_width_is_named_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    lines = (HEADER + rows(30)).splitlines(keepends=True)
    lines[17] = lines[17].replace(",maker", "")
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress("".join(lines).encode()))
    monkeypatch.setattr(trade_files, "_BLOCK_BYTES", block)
    with pytest.raises(InputError) as raised:
        open_trade_file(path, "csv", symbol=None, rows_per_chunk=4)
    assert raised.value.where == f"{path}:18"
    assert "expected 9 fields, found 8" in str(raised.value)


def test_the_csv_is_never_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.csv"
    path.write_text(HEADER + rows(50))

    def whole(_: Path) -> bytes:
        raise AssertionError("the whole file was read")

    monkeypatch.setattr(trade_files, "_read_bytes", whole)
    monkeypatch.setattr(trade_files, "_BLOCK_BYTES", 256)
    assert chunked(path, 8)[0] == 50


def test_a_file_changed_between_the_passes_stops_the_import(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(HEADER + rows(12))
    opened = open_trade_file(path, "csv", symbol=None, rows_per_chunk=5)
    path.write_text(HEADER + rows(12).replace("SOLUSDT,buy", "SOLUSDT,sell"))
    with pytest.raises(InputError, match="changed while it was imported"):
        list(opened.chunks)
