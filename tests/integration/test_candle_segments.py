"""Which candle files belong together (data.segments), on slices of the bundled real data."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from stagectl.data import SAMPLE_DIR
from stagectl.data.segments import check_candle_symbol, read_candle_set
from stagectl.errors import InputError


def sample_lines(symbol: str, first: str, bars: int) -> tuple[str, list[str]]:
    with gzip.open(SAMPLE_DIR / f"binance_perp_{symbol}_1h_ohlcv.csv.gz", "rt") as handle:
        lines = handle.readlines()
    start = next(k for k, line in enumerate(lines) if line.startswith(first))
    return lines[0], lines[start : start + bars]


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "".join(rows))
    return path


def test_the_symbol_comes_from_the_name_or_the_symbol_column(tmp_path: Path) -> None:
    header, rows = sample_lines("SOLUSDT", "2025-01-01T00", 24)
    named = read_candle_set([write(tmp_path / "SOLUSDT_1h.csv", header, rows)])
    assert (named.symbol, named.files[0].symbol_told_by) == ("SOLUSDT", "file name")
    column = [r.strip() + ",SOL/USDT\n" for r in rows]
    told = read_candle_set([write(tmp_path / "sol.csv", header.strip() + ",Symbol\n", column)])
    assert (told.symbol, told.files[0].symbol_told_by) == ("SOLUSDT", "symbol column")
    anonymous = read_candle_set([write(tmp_path / "bars.csv", header, rows)])
    assert anonymous.symbol is None
    assert check_candle_symbol(anonymous, "SOLUSDT", symbol_is="--symbol is", vouched=True)
    with pytest.raises(InputError, match="pass --symbol SOLUSDT"):
        check_candle_symbol(anonymous, "SOLUSDT", symbol_is="the fills are", vouched=False)
    with pytest.raises(InputError, match=r"holds SOLUSDT candles .* the fills are ETHUSDT"):
        check_candle_symbol(named, "ETHUSDT", symbol_is="the fills are", vouched=True)


def test_a_name_and_a_column_that_disagree_or_a_column_of_two_symbols_are_refused(
    tmp_path: Path,
) -> None:
    header, rows = sample_lines("SOLUSDT", "2025-01-01T00", 24)
    eth = [r.strip() + ",ETHUSDT\n" for r in rows]
    with pytest.raises(InputError, match="name says SOLUSDT but its symbol column says ETHUSDT"):
        read_candle_set([write(tmp_path / "SOLUSDT_1h.csv", header.strip() + ",symbol\n", eth)])
    mixed = [r.strip() + f",{'SOLUSDT' if k % 2 else 'ETHUSDT'}\n" for k, r in enumerate(rows)]
    with pytest.raises(InputError, match="several symbols"):
        read_candle_set([write(tmp_path / "bars.csv", header.strip() + ",symbol\n", mixed)])


def test_files_of_two_symbols_or_two_intervals_are_not_joined(tmp_path: Path) -> None:
    header, sol = sample_lines("SOLUSDT", "2025-01-01T00", 24)
    _, eth = sample_lines("ETHUSDT", "2025-01-02T00", 24)
    sol_file = write(tmp_path / "SOLUSDT_1h.csv", header, sol)
    with pytest.raises(InputError) as caught:
        read_candle_set([sol_file, write(tmp_path / "ETHUSDT_1h.csv", header, eth)])
    assert "ETHUSDT" in caught.value.message and str(sol_file) in caught.value.message
    with pytest.raises(InputError, match="name says 1m bars, but they are 1h apart"):
        read_candle_set([write(tmp_path / "SOLUSDT_1m.csv", header, sol)])
    _, later = sample_lines("SOLUSDT", "2025-01-02T00", 24)
    four_hourly = write(tmp_path / "later.csv", header, later[::4])
    with pytest.raises(InputError, match=r"4h bars, but .* has 1h bars"):
        read_candle_set([sol_file, four_hourly])


def test_a_gap_of_more_than_five_missing_bars_starts_a_segment(tmp_path: Path) -> None:
    header, rows = sample_lines("SOLUSDT", "2025-01-01T00", 40)
    kept = rows[:10] + rows[15:20] + rows[27:]  # 5 bars missing (bridged), then 7 (a gap)
    candles = read_candle_set([write(tmp_path / "SOLUSDT_1h.csv", header, kept)])
    assert candles.interval == pd.Timedelta(hours=1)
    assert candles.starts.tolist() == [0, 15]
    (gap,) = candles.gaps
    assert gap.missing_bars == 7
    assert candles.notes == (
        "gap: 7 missing 1h bars between 2025-01-01T19:00:00Z and 2025-01-02T03:00:00Z; "
        "indicators restart after it",
    )
