"""`stagectl data info` and `stagectl data check`: exit codes, --json, errors."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Run

HEADER = "timestamp,open,high,low,close,volume\n"


def write_minutes(path: Path, minutes: list[int]) -> Path:
    lines = [HEADER]
    for m in minutes:
        stamp = f"2024-01-01T{m // 60:02d}:{m % 60:02d}:00Z"
        lines.append(f"{stamp},100,101,99,100.5,3\n")
    path.write_text("".join(lines))
    return path


def test_data_info_lists_the_bundled_datasets(run: Run) -> None:
    result = run(["data", "info"])
    assert result.exit_code == 0
    assert "ETHUSDT  perp    funding  8h" in result.stdout
    assert result.stdout.count("\n") == 15  # header + 14 datasets


def test_data_info_json_is_one_document_with_every_dataset_intact(run: Run) -> None:
    result = run(["data", "info", "--json"])
    assert result.exit_code == 0
    document = result.json()
    assert len(document["datasets"]) == 14
    assert all(d["intact"] for d in document["datasets"])
    assert {d["symbol"] for d in document["datasets"]} == {
        "BTCUSDT",
        "ETHUSDT",
        "SOLUSDT",
        "XRPUSDT",
    }
    first = document["datasets"][0]
    assert first["first"] == "2024-01-01T00:00:00Z"
    assert first["gaps"] == 0


def test_data_check_exits_0_on_clean_bundled_funding(run: Run) -> None:
    result = run(["data", "check", "--symbol", "ETHUSDT", "--timeframe", "8h"])
    assert result.exit_code == 0
    assert "clean" in result.stdout
    assert "PROBLEMS" not in result.stdout


def test_data_check_exits_1_when_bundled_bars_carry_flagged_outliers(run: Run) -> None:
    result = run(["data", "check", "--symbol", "ETHUSDT", "--timeframe", "1h", "--json"])
    assert result.exit_code == 1
    document = result.json()
    assert document["source"] == "bundled"
    assert document["clean"] is False
    assert [(d["market"], d["kind"]) for d in document["datasets"]] == [
        ("perp", "mark"),
        ("perp", "ohlcv"),
        ("spot", "ohlcv"),
    ]
    quality = document["datasets"][1]["quality"]
    assert quality["rows_in"] == 20816
    assert quality["dropped_bars"] == 0
    assert len(quality["outliers"]) > 0
    assert all(abs(o["robust_z"]) > 10 for o in quality["outliers"])
    assert document["datasets"][0]["sha256_ok"] is True


def test_a_higher_outlier_threshold_makes_the_bundled_bars_clean(run: Run) -> None:
    result = run(["data", "check", "-s", "BTCUSDT", "-t", "1h", "--outlier-z", "50", "--json"])
    assert result.exit_code == 0
    assert result.json()["clean"] is True


def test_data_check_on_a_clean_directory_exits_0(run: Run, tmp_path: Path) -> None:
    write_minutes(tmp_path / "SOLUSDT_1m.csv", list(range(30)))
    result = run(["data", "check", "--data", tmp_path, "--json"])
    assert result.exit_code == 0
    (dataset,) = result.json()["datasets"]
    assert dataset["clean"] is True
    assert dataset["timeframe"] == "1m"


def test_data_check_reports_filled_and_dropped_gaps_and_exits_1(run: Run, tmp_path: Path) -> None:
    # 00:05-00:14 missing (10 bars, filled); 00:20-01:39 missing (80 bars, dropped)
    write_minutes(tmp_path / "SOLUSDT_1m.csv", [*range(5), *range(15, 20), *range(100, 105)])
    (tmp_path / "notes.csv").write_text("a,b\n")
    result = run(["data", "check", "--data", tmp_path, "--json"])
    assert result.exit_code == 1
    document = result.json()
    quality = document["datasets"][0]["quality"]
    assert quality["filled_bars"] == 10
    assert quality["dropped_gaps"] == [
        {
            "first_missing": "2024-01-01T00:20:00Z",
            "last_missing": "2024-01-01T01:39:00Z",
            "missing_bars": 80,
        }
    ]
    assert document["ignored_files"] == ["notes.csv"]


def test_data_check_text_output_names_the_dropped_range(run: Run, tmp_path: Path) -> None:
    write_minutes(tmp_path / "SOLUSDT_1m.csv", [*range(5), *range(100, 105)])
    result = run(["data", "check", "--data", tmp_path])
    assert result.exit_code == 1
    assert "gap dropped: 2024-01-01T00:05Z .. 2024-01-01T01:39Z (95 bars)" in result.stdout


def test_data_check_reports_off_grid_timestamps(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "SOLUSDT_1h.csv"
    path.write_text(
        HEADER
        + "2024-01-01T00:00:00.016Z,100,101,99,100,1\n"
        + "2024-01-01T01:00:00Z,100,101,99,100,1\n"
    )
    result = run(["data", "check", "--data", tmp_path, "--json"])
    assert result.exit_code == 1
    quality = result.json()["datasets"][0]["quality"]
    assert quality["off_grid_rows"] == 1
    assert quality["off_grid_max_offset_s"] == 0.016


def test_data_check_on_a_bad_row_exits_2_naming_file_and_line(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "SOLUSDT_1h.csv"
    path.write_text(HEADER + "2024-01-01T00:00:00Z,100,99,98,100,1\n")
    result = run(["data", "check", "--data", tmp_path, "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"stagectl: {path}:2: column high:")
    assert "Traceback" not in result.stderr


def test_data_check_on_a_missing_directory_exits_2(run: Run, tmp_path: Path) -> None:
    result = run(["data", "check", "--data", tmp_path / "nope"])
    assert result.exit_code == 2
    assert "not a directory" in result.stderr


def test_data_check_with_no_matching_dataset_exits_2(run: Run) -> None:
    result = run(["data", "check", "--symbol", "DOGEUSDT"])
    assert result.exit_code == 2
    assert "DOGEUSDT" in result.stderr


def test_data_check_with_an_unknown_timeframe_exits_2(run: Run) -> None:
    result = run(["data", "check", "--timeframe", "1y"])
    assert result.exit_code == 2
    assert "timeframe" in result.stderr


def test_data_help_shows_examples(run: Run) -> None:
    for args in (["data", "--help"], ["data", "info", "--help"], ["data", "check", "--help"]):
        result = run(args)
        assert result.exit_code == 0
        assert "Example: stagectl data" in result.stdout
