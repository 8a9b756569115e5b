"""Loading candles and funding: the bundled sample, data directories, validation errors."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stagectl.data import SAMPLE_DIR, bundled_datasets, load_candles, load_funding
from stagectl.data.loaders import read_candles, read_marks
from stagectl.errors import InputError
from tests.conftest import SHARED_DATA

HEADER = "timestamp,open,high,low,close,volume\n"
ROWS: list[tuple[str, ...]] = [
    ("2024-01-01T00:00:00Z", "100.5", "101.0", "99.5", "100.0", "12.5"),
    ("2024-01-01T01:00:00Z", "100.0", "102.0", "99.0", "101.5", "8.0"),
    ("2024-01-01T02:00:00Z", "101.5", "101.5", "100.25", "100.75", "0"),
]


def write_csv(path: Path, header: str, rows: Sequence[tuple[str, ...]]) -> Path:
    text = header + "".join(",".join(row) + "\n" for row in rows)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def with_ts(rows: Sequence[tuple[str, ...]], stamps: list[str]) -> list[tuple[str, ...]]:
    return [(stamp, *row[1:]) for stamp, row in zip(stamps, rows, strict=True)]


EXPECTED_INDEX = pd.DatetimeIndex(
    ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"], name="timestamp"
)


def test_bundled_candles_have_the_agreed_shape() -> None:
    candles = load_candles("ETHUSDT")
    assert list(candles.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == np.float64 for dtype in candles.dtypes)
    assert candles.index.name == "timestamp"
    assert str(pd.DatetimeIndex(candles.index).tz) == "UTC"
    assert candles.index.is_monotonic_increasing and candles.index.is_unique
    assert candles.index[0] == pd.Timestamp("2024-01-01T00:00:00Z")
    assert len(candles) == 20816


def test_bundled_spot_candles_and_funding_load_for_every_symbol() -> None:
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"):
        spot = load_candles(symbol, market="spot")
        funding = load_funding(symbol)
        assert spot.index[0] == pd.Timestamp("2024-01-01T00:00:00Z")
        assert funding.name == "funding_rate"
        assert funding.dtype == np.float64
        assert set(pd.DatetimeIndex(funding.index).hour) <= {0, 8, 16}


def test_symbols_are_accepted_in_ccxt_spelling() -> None:
    pd.testing.assert_series_equal(load_funding("sol/usdt:usdt"), load_funding("SOLUSDT"))


def test_bundled_manifest_matches_the_files() -> None:
    datasets = bundled_datasets()
    assert len(datasets) == 14  # 12 for every symbol + ETH and SOL mark prices
    for dataset in datasets:
        data = dataset.path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == dataset.sha256
        lines = gzip.decompress(data).decode().splitlines()
        assert len(lines) - 1 == dataset.rows
        assert lines[1].startswith(dataset.first + ",")
        assert lines[-1].startswith(dataset.last + ",")
    total_bytes = sum(p.stat().st_size for p in SAMPLE_DIR.iterdir())
    assert total_bytes < 8_000_000


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not present")
def test_bundled_sample_equals_the_shared_data_from_2024_exactly() -> None:
    for dataset in bundled_datasets():
        source = SHARED_DATA / dataset.source
        source_lines = gzip.decompress(source.read_bytes()).decode().splitlines()
        sample_lines = gzip.decompress(dataset.path.read_bytes()).decode().splitlines()
        assert sample_lines[0] == source_lines[0]
        start = source_lines.index(sample_lines[1])
        assert source_lines[start:] == sample_lines[1:], dataset.file
        assert source_lines[start - 1] < "2024-01-01T00:00:00Z" or start == 1
        if dataset.kind == "ohlcv":
            ours = load_candles(dataset.symbol, market=dataset.market)
            theirs = load_candles(dataset.symbol, market=dataset.market, data_dir=SHARED_DATA)
            pd.testing.assert_frame_equal(ours, theirs.loc["2024-01-01":], check_exact=True)
        elif dataset.kind == "mark":
            marks = read_marks(dataset.symbol).frame
            shared = read_marks(dataset.symbol, data_dir=SHARED_DATA).frame
            pd.testing.assert_frame_equal(marks, shared.loc["2024-01-01":], check_exact=True)
        else:
            ours_rates = load_funding(dataset.symbol)
            theirs_rates = load_funding(dataset.symbol, data_dir=SHARED_DATA)
            pd.testing.assert_series_equal(
                ours_rates, theirs_rates.loc["2024-01-01":], check_exact=True
            )


@pytest.mark.parametrize(
    ("name", "stamps"),
    [
        ("binance_perp_ETHUSDT_1h_ohlcv.csv.gz", [r[0] for r in ROWS]),
        ("ETHUSDT_1h.csv", ["1704067200", "1704070800", "1704074400"]),
        ("ETHUSDT_1h.csv.gz", ["1704067200000", "1704070800000", "1704074400000"]),
        ("ETHUSDT_perp_1h.csv", ["2024-01-01 00:00:00", "2024-01-01 01:00:00", "2024-01-01 02:00"]),
        ("ETHUSDT_1h.csv", ["2024-01-01T01:00:00+01:00", "2024-01-01T01:00Z", "2024-01-01T02Z"]),
    ],
)
def test_a_data_directory_accepts_both_naming_styles_and_timestamp_forms(
    tmp_path: Path, name: str, stamps: list[str]
) -> None:
    write_csv(tmp_path / name, HEADER, with_ts(ROWS, stamps))
    candles = load_candles("ETHUSDT", data_dir=tmp_path)
    pd.testing.assert_index_equal(candles.index, EXPECTED_INDEX.as_unit("ns"))
    assert candles["close"].tolist() == [100.0, 101.5, 100.75]
    assert candles["volume"].tolist() == [12.5, 8.0, 0.0]


def test_spot_and_funding_files_with_simple_names_load(tmp_path: Path) -> None:
    write_csv(tmp_path / "ETHUSDT_spot_1h.csv", HEADER, ROWS)
    write_csv(
        tmp_path / "ETHUSDT_funding.csv",
        "timestamp,funding_rate\n",
        [("2024-01-01T00:00:00Z", "0.0001"), ("2024-01-01T08:00:00Z", "-2.5e-05")],
    )
    assert len(load_candles("ETHUSDT", market="spot", data_dir=tmp_path)) == 3
    assert load_funding("ETHUSDT", data_dir=tmp_path).tolist() == [0.0001, -2.5e-05]


def test_parts_of_one_dataset_are_read_together(tmp_path: Path) -> None:
    write_csv(tmp_path / "binance_perp_SOLUSDT_1h_ohlcv_a.csv", HEADER, ROWS[:2])
    write_csv(tmp_path / "binance_perp_SOLUSDT_1h_ohlcv_b.csv", HEADER, ROWS[2:])
    assert len(load_candles("SOLUSDT", data_dir=tmp_path)) == 3


def test_unsorted_rows_are_sorted_and_the_sort_is_reported(tmp_path: Path) -> None:
    write_csv(tmp_path / "ETHUSDT_1h.csv", HEADER, [ROWS[2], ROWS[0], ROWS[1]])
    loaded = read_candles("ETHUSDT", data_dir=tmp_path)
    assert loaded.resorted
    pd.testing.assert_index_equal(loaded.frame.index, EXPECTED_INDEX.as_unit("ns"))
    assert loaded.frame["close"].tolist() == [100.0, 101.5, 100.75]


def test_a_blank_line_is_skipped_and_later_lines_keep_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "ETHUSDT_1h.csv"
    path.write_text(HEADER + ",".join(ROWS[0]) + "\n\n" + "2024-01-01T01:00:00Z,1,2,0.5,x,1\n")
    with pytest.raises(InputError) as caught:
        load_candles("ETHUSDT", data_dir=tmp_path)
    assert caught.value.where == f"{path}:4"
    assert "close" in caught.value.message


def expect_error(
    tmp_path: Path, rows: Sequence[tuple[str, ...]], header: str = HEADER
) -> InputError:
    write_csv(tmp_path / "ETHUSDT_1h.csv", header, rows)
    with pytest.raises(InputError) as caught:
        load_candles("ETHUSDT", data_dir=tmp_path)
    return caught.value


def test_a_missing_column_names_the_header_line(tmp_path: Path) -> None:
    error = expect_error(tmp_path, [row[:5] for row in ROWS], "timestamp,open,high,low,close\n")
    assert error.where == f"{tmp_path / 'ETHUSDT_1h.csv'}:1"
    assert "volume" in error.message


def test_an_unparseable_number_names_file_line_and_column(tmp_path: Path) -> None:
    rows = [ROWS[0], ROWS[1], ("2024-01-01T02:00:00Z", "101.5", "abc", "100", "100.5", "1")]
    error = expect_error(tmp_path, rows)
    assert error.where == f"{tmp_path / 'ETHUSDT_1h.csv'}:4"
    assert "column high" in error.message and "'abc'" in error.message


def test_an_unparseable_timestamp_names_file_and_line(tmp_path: Path) -> None:
    error = expect_error(tmp_path, with_ts(ROWS, [ROWS[0][0], "yesterday", ROWS[2][0]]))
    assert error.where == f"{tmp_path / 'ETHUSDT_1h.csv'}:3"
    assert "timestamp" in error.message


@pytest.mark.parametrize(
    ("bad_row", "column"),
    [
        (("2024-01-01T01:00:00Z", "100", "100.5", "99", "101", "1"), "high"),
        (("2024-01-01T01:00:00Z", "100", "102", "100.5", "101", "1"), "low"),
        (("2024-01-01T01:00:00Z", "100", "102", "99", "101", "-1"), "volume"),
        (("2024-01-01T01:00:00Z", "0", "102", "0", "101", "1"), "open"),
    ],
)
def test_an_impossible_bar_names_file_line_and_column(
    tmp_path: Path, bad_row: tuple[str, ...], column: str
) -> None:
    error = expect_error(tmp_path, [ROWS[0], bad_row, ROWS[2]])
    assert error.where == f"{tmp_path / 'ETHUSDT_1h.csv'}:3"
    assert error.message.startswith(f"column {column}:")


def test_a_duplicate_timestamp_names_file_line_and_the_timestamp(tmp_path: Path) -> None:
    error = expect_error(tmp_path, [ROWS[0], ROWS[1], ROWS[1]])
    assert error.where == f"{tmp_path / 'ETHUSDT_1h.csv'}:4"
    assert "duplicate timestamp 2024-01-01T01:00:00Z" in error.message


def test_a_missing_symbol_names_the_symbol_and_where_it_looked(tmp_path: Path) -> None:
    write_csv(tmp_path / "ETHUSDT_1h.csv", HEADER, ROWS)
    with pytest.raises(InputError) as caught:
        load_candles("DOGEUSDT", data_dir=tmp_path)
    assert caught.value.where == str(tmp_path)
    assert "DOGEUSDT" in caught.value.message
    assert "DOGEUSDT_1h.csv" in caught.value.message


def test_a_symbol_not_bundled_is_an_input_error() -> None:
    with pytest.raises(InputError) as caught:
        load_candles("DOGEUSDT")
    assert "DOGEUSDT" in caught.value.message
    assert caught.value.where == str(SAMPLE_DIR)


def test_a_corrupt_gzip_file_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "ETHUSDT_1h.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InputError) as caught:
        load_candles("ETHUSDT", data_dir=tmp_path)
    assert caught.value.where == str(tmp_path / "ETHUSDT_1h.csv.gz")


def test_a_gzip_file_damaged_inside_its_deflate_stream_is_an_input_error(tmp_path: Path) -> None:
    text = HEADER + "".join(",".join(row) + "\n" for row in ROWS * 40)
    data = bytearray(gzip.compress(text.encode(), mtime=0))
    data[20:36] = b"\xff" * 16
    with pytest.raises(zlib.error):  # not an OSError: the loader used to let it through
        gzip.decompress(bytes(data))
    (tmp_path / "ETHUSDT_1h.csv.gz").write_bytes(bytes(data))
    with pytest.raises(InputError) as caught:
        load_candles("ETHUSDT", data_dir=tmp_path)
    assert caught.value.where == str(tmp_path / "ETHUSDT_1h.csv.gz")
    assert caught.value.message.startswith("cannot read: ")


@pytest.mark.parametrize(
    ("first", "stamp", "last"),
    [
        (ROWS[0][0], "-1", ROWS[2][0]),
        (ROWS[0][0], "0001-01-01", ROWS[2][0]),
        (ROWS[0][0], "2262-05-01T00:00:00Z", ROWS[2][0]),
        ("1704067200", "1e30", "1704074400"),
        ("1704067200", "-99999999999999", "1704074400"),
        ("1704067200", "9" * 30, "1704074400"),
    ],
)
def test_a_time_outside_what_a_timestamp_holds_names_file_and_line(
    tmp_path: Path, first: str, stamp: str, last: str
) -> None:
    error = expect_error(tmp_path, with_ts(ROWS, [first, stamp, last]))
    assert error.where == f"{tmp_path / 'ETHUSDT_1h.csv'}:3"
    assert error.message.startswith("column timestamp: ")


@pytest.mark.parametrize("extra", ["Close", "ts", "OPEN_TIME"])
def test_a_column_given_twice_under_another_case_or_alias_is_an_input_error(
    tmp_path: Path, extra: str
) -> None:
    rows = [(*row, "1") for row in ROWS]
    error = expect_error(tmp_path, rows, HEADER.strip() + f",{extra}\n")
    assert error.where == f"{tmp_path / 'ETHUSDT_1h.csv'}:1"
    assert "given twice" in error.message


def test_an_impossible_bar_shows_the_values_as_plain_numbers(tmp_path: Path) -> None:
    bad_row = ("2024-01-01T01:00:00Z", "100", "100.5", "99", "101", "1")
    error = expect_error(tmp_path, [ROWS[0], bad_row, ROWS[2]])
    assert error.message == (
        "column high: high is below max(open, close) "
        "(open=100.0, high=100.5, low=99.0, close=101.0, volume=1.0)"
    )


@pytest.mark.parametrize("value", ["inf", "-Infinity"])
def test_an_infinite_number_is_quoted_as_text(tmp_path: Path, value: str) -> None:
    rows = [ROWS[0], ("2024-01-01T01:00:00Z", "100", "102", "99", "101", value)]
    error = expect_error(tmp_path, rows)
    assert error.where == f"{tmp_path / 'ETHUSDT_1h.csv'}:3"
    assert error.message.startswith(f"column volume: '{float(value)}' is not a finite number")


def test_a_timestamp_column_of_booleans_is_an_input_error(tmp_path: Path) -> None:
    error = expect_error(tmp_path, with_ts(ROWS, ["True", "False", "True"]))
    assert error.where == f"{tmp_path / 'ETHUSDT_1h.csv'}:2"
    assert error.message.startswith("column timestamp: 'True' is not an ISO-8601 time")


def test_blank_lines_in_a_clean_file_keep_the_later_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "ETHUSDT_1h.csv"
    bad = "2024-01-01T02:00:00Z,101.5,101.5,100.25,100.75,-1"
    path.write_text(HEADER + ",".join(ROWS[0]) + "\n\n,,,,,\n" + ",".join(ROWS[1]) + "\n" + bad)
    with pytest.raises(InputError) as caught:
        load_candles("ETHUSDT", data_dir=tmp_path)
    assert caught.value.where == f"{path}:6"
    assert caught.value.message.startswith("column volume: volume is negative")
    path.write_text(HEADER + ",".join(ROWS[0]) + "\n\n" + ",".join(ROWS[1]) + "\n\n\n")
    assert len(load_candles("ETHUSDT", data_dir=tmp_path)) == 2


def test_a_duplicate_across_parts_names_the_later_file_and_its_line(tmp_path: Path) -> None:
    write_csv(tmp_path / "binance_perp_SOLUSDT_1h_ohlcv_a.csv", HEADER, [ROWS[2], ROWS[0]])
    write_csv(tmp_path / "binance_perp_SOLUSDT_1h_ohlcv_b.csv", HEADER, [ROWS[1], ROWS[0]])
    with pytest.raises(InputError) as caught:
        load_candles("SOLUSDT", data_dir=tmp_path)
    assert caught.value.where == f"{tmp_path / 'binance_perp_SOLUSDT_1h_ohlcv_b.csv'}:3"
    assert caught.value.message == "duplicate timestamp 2024-01-01T00:00:00Z"


def test_the_loaded_frame_can_be_changed_in_place(tmp_path: Path) -> None:
    write_csv(tmp_path / "ETHUSDT_1h.csv", HEADER, ROWS)
    candles = load_candles("ETHUSDT", data_dir=tmp_path)
    candles.iloc[0, 0] = 7.0
    candles.loc[candles.index[1], "close"] = 8.0
    assert candles["open"].iloc[0] == 7.0 and candles["close"].iloc[1] == 8.0
    assert load_candles("ETHUSDT", data_dir=tmp_path)["open"].iloc[0] == 100.5
