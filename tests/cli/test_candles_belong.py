"""Candles that do not belong with the fills, or with each other, are refused or kept apart.

On slices of the real SOLUSDT 1-minute data (2023-07 and 2025-05, 21 months apart):
candles of another symbol than the fills' (told by the file name or a ``symbol`` column),
files that overlap with different values, a corrupt gzip file; two slices far apart are
segments whose indicators restart after the gap; and the ledger side of ``regime-analyze``
reads only the fills inside the candles' time range.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path

import pytest

from stagectl.data import SAMPLE_DIR
from tests.conftest import SHARED_DATA, Run

SOL_2023 = SHARED_DATA / "binance_perp_SOLUSDT_1m_ohlcv_2023-07.csv.gz"
SOL_2025 = SHARED_DATA / "binance_perp_SOLUSDT_1m_ohlcv_2025-05.csv.gz"
pytestmark = pytest.mark.skipif(
    not (SOL_2023.is_file() and SOL_2025.is_file()), reason="shared SOL 1m data not present"
)
HEADER = "timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity"
SLICE_BARS = 2000  # more than the 1,440-bar windows, so each segment has labels of its own


def real_lines(source: Path, first: str, bars: int) -> tuple[str, list[str]]:
    """The header and ``bars`` rows of a shared file from the bar opening at ``first``."""
    with gzip.open(source, "rt") as handle:
        lines = handle.readlines()
    start = next(k for k, line in enumerate(lines) if line.startswith(first))
    return lines[0], lines[start : start + bars]


def write_gz(path: Path, header: str, rows: list[str]) -> Path:
    with gzip.open(path, "wt") as out:
        out.write(header + "".join(rows))
    return path


@pytest.fixture(scope="module")
def slices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real SOLUSDT 1m slices: ``early`` (2023-07-20), ``late`` (2025-05-05, named by the
    shared convention), ``anonymous`` (the late slice under a name that tells no symbol)."""
    folder = tmp_path_factory.mktemp("sol")
    header, early = real_lines(SOL_2023, "2023-07-20T00:00:00", SLICE_BARS)
    _, late = real_lines(SOL_2025, "2025-05-05T00:00:00", SLICE_BARS)
    return {
        "early": write_gz(folder / "binance_perp_SOLUSDT_1m_ohlcv_2023-07.csv.gz", header, early),
        "late": write_gz(folder / "binance_perp_SOLUSDT_1m_ohlcv_2025-05.csv.gz", header, late),
        "anonymous": write_gz(folder / "candles.csv.gz", header, late),
    }


def fills_csv(path: Path, symbol: str, price: float, *, first_minute: int = 60) -> Path:
    """300 maker fills of ``symbol`` on 2025-05-05/06, every 5 minutes from ``first_minute``."""
    rows = [HEADER]
    for k in range(300):
        minute = first_minute + 5 * k
        stamp = f"2025-05-{5 + minute // 1440:02d}T{minute // 60 % 24:02d}:{minute % 60:02d}:30Z"
        side = "buy" if k % 3 else "sell"
        rows.append(
            f"{stamp},{symbol}-{k},{symbol},{side},{price + (k % 7) * 0.05:.2f},0.1,0,,maker"
        )
    path.write_text("\n".join(rows) + "\n")
    return path


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("stagectl: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def test_export_windows_refuses_candles_of_another_symbol_than_the_fills(
    run: Run, slices: dict[str, Path], tmp_path: Path
) -> None:
    assert (
        run(["metrics", "import", fills_csv(tmp_path / "eth.csv", "ETHUSDT", 1810)]).exit_code == 0
    )
    result = run(["metrics", "export-windows", "--candles", slices["late"]])
    assert result.exit_code == 2
    assert result.stdout == ""
    error = one_error_line(result.stderr)
    assert str(slices["late"]) in error
    assert "SOLUSDT" in error and "ETHUSDT" in error


def test_regime_analyze_refuses_candles_of_another_symbol(
    run: Run, slices: dict[str, Path]
) -> None:
    result = run(["regime-analyze", "--symbol", "ETHUSDT", "--candles", slices["late"], "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    error = one_error_line(result.stderr)
    assert str(slices["late"]) in error and "SOLUSDT" in error and "ETHUSDT" in error


def test_a_symbol_column_tells_the_candles_symbol(
    run: Run, slices: dict[str, Path], tmp_path: Path
) -> None:
    header, rows = real_lines(slices["late"], "2025-05-05T00:00:00", 100)
    with_column = tmp_path / "candles.csv"
    with_column.write_text(
        header.strip() + ",symbol\n" + "".join(r.strip() + ",SOL/USDT:USDT\n" for r in rows)
    )
    told = run(["regime-analyze", "--candles", with_column, "--json"])
    assert told.exit_code == 0, told.stderr
    assert told.json()["symbol"] == "SOLUSDT"
    refused = run(["regime-analyze", "--symbol", "ETHUSDT", "--candles", with_column])
    assert refused.exit_code == 2
    assert "symbol column" in one_error_line(refused.stderr)


def test_a_file_that_tells_no_symbol_is_used_only_on_the_word_of_symbol(
    run: Run, slices: dict[str, Path], tmp_path: Path
) -> None:
    anonymous = slices["anonymous"]
    refused = run(["regime-analyze", "--candles", anonymous, "--json"])
    assert refused.exit_code == 2
    assert "--symbol" in one_error_line(refused.stderr)
    vouched = run(["regime-analyze", "--symbol", "SOLUSDT", "--candles", anonymous, "--json"])
    assert vouched.exit_code == 0, vouched.stderr
    notes = vouched.json()["notes"]
    assert any(str(anonymous) in note and "SOLUSDT" in note for note in notes)

    run(["metrics", "import", fills_csv(tmp_path / "sol.csv", "SOLUSDT", 146)])
    export = ["metrics", "export-windows", "--candles", anonymous]
    assert run(export).exit_code == 2
    vouched = run([*export, "--symbol", "SOLUSDT"])
    assert vouched.exit_code == 0, vouched.stderr
    assert str(anonymous) in vouched.stderr


def test_slices_far_apart_are_segments_whose_indicators_restart_after_the_gap(
    run: Run, slices: dict[str, Path], tmp_path: Path
) -> None:
    both, early, late = tmp_path / "both", tmp_path / "early", tmp_path / "late"
    # given in the wrong order on purpose: the files are sorted by time
    files = ["--candles", slices["late"], "--candles", slices["early"]]
    result = run(["regime-analyze", *files, "--export", both, "--json"])
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert document["candles"]["segments"] == 2
    (gap,) = document["candles"]["gaps"]
    assert gap["first_bar_after"] == "2025-05-05T00:00:00Z"
    assert any("2025-05-05T00:00:00Z" in note for note in document["notes"])
    for name, path in (("early", early), ("late", late)):
        alone = run(["regime-analyze", "--candles", slices[name], "--export", path])
        assert alone.exit_code == 0, alone.stderr
    joined = read_csv(both / "regimes.csv")
    assert len(joined) == 2 * SLICE_BARS
    first_after = joined[SLICE_BARS]
    assert first_after["timestamp"] == "2025-05-05T00:00:00Z"
    assert first_after["adx"] == first_after["plus_di"] == first_after["minus_di"] == ""
    assert first_after["regime"] == "NEUTRAL"
    assert joined[:SLICE_BARS] == read_csv(early / "regimes.csv")
    assert joined[SLICE_BARS:] == read_csv(late / "regimes.csv")
    human = run(["regime-analyze", "--candles", slices["early"], "--candles", slices["late"]])
    assert "gap: " in human.stderr and "gap: " not in human.stdout


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_overlapping_files_join_when_they_agree_and_are_refused_when_they_differ(
    run: Run, slices: dict[str, Path], tmp_path: Path
) -> None:
    header, rows = real_lines(slices["late"], "2025-05-05T00:00:00", SLICE_BARS)
    first = write_gz(tmp_path / "SOLUSDT_1m.csv.gz", header, rows[:1200])
    second = write_gz(tmp_path / "binance_perp_SOLUSDT_1m_ohlcv_b.csv.gz", header, rows[1000:])
    joined = run(["regime-analyze", "--candles", first, "--candles", second, "--json"])
    assert joined.exit_code == 0, joined.stderr
    assert joined.json()["candles"]["bars"] == SLICE_BARS
    assert joined.json()["candles"]["segments"] == 1

    stamp, *values = rows[1100].strip().split(",")
    changed = [*rows[1000:]]
    changed[100] = ",".join([stamp, *values[:4], f"{float(values[4]) + 1:.3f}"]) + "\n"
    third = write_gz(tmp_path / "binance_perp_SOLUSDT_1m_ohlcv_c.csv.gz", header, changed)
    refused = run(["regime-analyze", "--candles", first, "--candles", third])
    assert refused.exit_code == 2
    error = one_error_line(refused.stderr)
    assert str(first) in error and str(third) in error and stamp in error


def test_a_corrupt_gzip_candle_file_is_exit_2_naming_it(
    run: Run, slices: dict[str, Path], tmp_path: Path
) -> None:
    data = bytearray(slices["late"].read_bytes())
    data[200:216] = b"\xff" * 16  # breaks the deflate stream itself, not only its checksum
    with pytest.raises(zlib.error):
        gzip.decompress(bytes(data))
    corrupt = tmp_path / "binance_perp_SOLUSDT_1m_ohlcv.csv.gz"
    corrupt.write_bytes(bytes(data))
    run(["metrics", "import", fills_csv(tmp_path / "sol.csv", "SOLUSDT", 146)])
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    in_dir = data_dir / "SOLUSDT_1h.csv.gz"
    in_dir.write_bytes(bytes(data))
    funding = "binance_perp_SOLUSDT_8h_funding.csv.gz"
    (data_dir / funding).write_bytes((SAMPLE_DIR / funding).read_bytes())
    for args, path in (
        (["regime-analyze", "--candles", corrupt], corrupt),
        (["metrics", "export-windows", "--candles", corrupt], corrupt),
        (["backtest", "--data", data_dir, "--symbol", "SOLUSDT"], in_dir),
    ):
        result = run(args)
        assert result.exit_code == 2, result.stderr
        assert one_error_line(result.stderr).startswith(f"stagectl: {path}: cannot read: ")


def unrelated_fills(path: Path) -> Path:
    """Fills that have nothing to do with SOLUSDT candles of 2025-05-05/06: ETHUSDT fills
    throughout (also inside the candles' range), SOLUSDT round trips in April that leave no
    position, and SOLUSDT fills in June."""
    rows = [HEADER]
    for k in range(6000):
        day, minute = 1 + k // 480, k % 480 * 3
        stamp = f"2025-05-{day:02d}T{minute // 60:02d}:{minute % 60:02d}:10Z"
        rows.append(f"{stamp},e{k},ETHUSDT,{'buy' if k % 2 else 'sell'},1800.5,0.2,0,,maker")
    for k in range(4000):
        day, minute = 1 + k // 400, k % 400 * 3
        stamp = f"2025-04-{day:02d}T{minute // 60:02d}:{minute % 60:02d}:10Z"
        rows.append(f"{stamp},b{k},SOLUSDT,{'sell' if k % 2 else 'buy'},{140 + k % 9},0.3,0,,maker")
        stamp = stamp.replace("2025-04-", "2025-06-")
        rows.append(f"{stamp},a{k},SOLUSDT,{'buy' if k % 3 else 'sell'},{150 + k % 5},0.4,0,,taker")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_unrelated_fills_in_the_ledger_change_nothing(
    run: Run, home: Path, slices: dict[str, Path], tmp_path: Path
) -> None:
    analyse = ["regime-analyze", "--candles", slices["late"], "--json"]
    other_home = tmp_path / "other"
    other_home.mkdir()
    empty = run(["--home", other_home, *analyse]).json()
    assert empty["pnl"]["empty"] is True
    assert (
        run(
            ["--home", other_home, "metrics", "import", unrelated_fills(tmp_path / "u.csv")]
        ).exit_code
        == 0
    )
    only_unrelated = run(["--home", other_home, *analyse]).json()
    assert only_unrelated == empty

    assert (
        run(["metrics", "import", fills_csv(tmp_path / "sol.csv", "SOLUSDT", 146)]).exit_code == 0
    )
    in_range = run(analyse).json()
    assert in_range["pnl"]["windows"] == 300
    assert run(["metrics", "import", tmp_path / "u.csv"]).exit_code == 0
    assert run(analyse).json() == in_range


def test_export_windows_refuses_a_bar_repeated_in_its_candle_file(
    run: Run, slices: dict[str, Path], tmp_path: Path
) -> None:
    header, rows = real_lines(slices["late"], "2025-05-05T00:00:00", 300)
    repeated = write_gz(
        tmp_path / "SOLUSDT_1m.csv.gz", header, [*rows[:100], rows[50], *rows[100:]]
    )
    run(["metrics", "import", fills_csv(tmp_path / "sol.csv", "SOLUSDT", 146)])
    result = run(["metrics", "export-windows", "--candles", repeated])
    assert result.exit_code == 2
    assert one_error_line(result.stderr).startswith(
        f"stagectl: {repeated}:102: duplicate timestamp"
    )
