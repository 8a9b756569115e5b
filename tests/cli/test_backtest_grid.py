"""backtest --grid: the grid file, its table, JSON and CSV, and its errors (serial path;
the Dask path: tests/integration/test_research_dask.py)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import Run

GRID = """\
parameters:
  lookback_scale: [0.5, 2]
  cost_multiplier: [1, 1.5]
symbols: [SOLUSDT]
periods:
  - {name: "2025H1", start: 2025-01-01, end: 2025-06-30}
"""


@pytest.fixture
def grid_file(home: Path) -> Path:
    path = home / "grid.yaml"
    path.write_text(GRID)
    return path


def test_grid_json_is_one_envelope_with_a_row_per_cell(run: Run, grid_file: Path) -> None:
    result = run(["backtest", "--grid", grid_file, "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["kind"] == "backtest-grid"
    body = document["body"]
    assert body["grid"]["cells"] == 4 == len(body["rows"])
    assert body["grid"]["configurations"] == 4
    first = body["rows"][0]
    assert first["parameters"] == {"lookback_scale": 0.5, "cost_multiplier": 1.0}
    assert (first["symbol"], first["period"]) == ("SOLUSDT", "2025H1")
    assert first["start"] == "2025-01-01T00:00:00Z" and first["end"] == "2025-06-30T23:00:00Z"
    stressed = body["rows"][1]
    assert stressed["parameters"]["cost_multiplier"] == 1.5
    assert stressed["trades"] == first["trades"]
    assert stressed["total_return"] < first["total_return"]
    assert "backtest-grid cells: 4/4 done" in result.stderr.splitlines()


def test_a_grid_cell_equals_the_plain_backtest_of_that_symbol_and_window(
    run: Run, home: Path
) -> None:
    path = home / "grid.json"
    path.write_text(
        json.dumps(
            {
                "symbols": ["ETHUSDT"],
                "periods": [{"start": "2025-01-01", "end": "2025-03-31"}],
            }
        )
    )
    grid = run(["backtest", "--grid", path, "--json"])
    plain = run(
        [
            "backtest",
            "--symbol",
            "ETHUSDT",
            "--start",
            "2025-01-01",
            "--end",
            "2025-03-31",
            "--json",
        ]
    )
    assert grid.exit_code == plain.exit_code == 0, grid.stderr + plain.stderr
    [row] = grid.json()["body"]["rows"]
    metrics = plain.json()["body"]["metrics"]
    assert row["period"] == "2025-01-01..2025-03-31"
    for name in ("total_return", "sharpe_net", "max_drawdown", "trades", "final_equity"):
        assert row[name] == metrics[name], name


def test_grid_prints_a_table_and_exports_grid_csv(
    run: Run, grid_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run(["backtest", "--grid", grid_file, "--export", out])
    assert result.exit_code == 0, result.stderr
    assert "4 cells = 4 configurations x 1 symbols x 1 periods" in result.stdout
    assert "lookback_scale=2 cost_multiplier=1.5" in result.stdout
    with (out / "grid.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["lookback_scale"] for r in rows] == ["0.5", "0.5", "2", "2"]
    assert {"cell", "symbol", "period", "bars", "sharpe_net", "max_drawdown"} <= set(rows[0])


def test_a_bad_grid_file_is_one_line_naming_the_file_line_and_field(run: Run, home: Path) -> None:
    path = home / "grid.yaml"
    path.write_text("symbols: [SOLUSDT]\nparameters:\n  debounce_bars: [2, 0]\n")
    result = run(["backtest", "--grid", path])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"stagectl: {path}:3: parameters.debounce_bars[1]: ")
    assert len(result.stderr.splitlines()) == 1


def test_an_unknown_grid_parameter_is_refused(run: Run, home: Path) -> None:
    path = home / "grid.yaml"
    path.write_text("symbols: [SOLUSDT]\nparameters:\n  fast: [10]\n")
    result = run(["backtest", "--grid", path])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"stagectl: {path}:3: parameters.fast: ")


def test_a_failing_cell_names_its_parameters_symbol_and_period(run: Run, home: Path) -> None:
    path = home / "grid.yaml"
    path.write_text(
        "parameters: {lookback_scale: [2]}\nsymbols: [SOLUSDT]\n"
        "periods: [{name: '2019', start: 2019-01-01, end: 2019-12-31}]\n"
    )
    result = run(["backtest", "--grid", path])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "stagectl: grid cell lookback_scale=2 SOLUSDT 2019: --start/--end: fewer than 2"
    )


@pytest.mark.parametrize(
    "extra",
    [
        ["--symbol", "ETHUSDT"],
        ["--start", "2025-01-01"],
        ["--breakers"],
        ["--record", "r1"],
        ["--html", "grid.html"],
    ],
)
def test_grid_refuses_options_its_cells_set_themselves(
    run: Run, grid_file: Path, extra: list[str]
) -> None:
    result = run(["backtest", "--grid", grid_file, *extra])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"stagectl: --grid: cannot be combined with {extra[0]}")


def test_workers_without_a_grid_is_a_usage_error(run: Run) -> None:
    result = run(["backtest", "--workers", "2"])
    assert result.exit_code == 2
    assert "--workers/--scheduler run the cells of a --grid" in result.stderr


def test_a_scheduler_in_the_environment_leaves_a_plain_backtest_alone(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:1")
    result = run(["backtest", "--start", "2026-01-01", "--json"])
    assert result.exit_code == 0, result.stderr
    assert result.json()["kind"] == "backtest"
    flag = run(["backtest", "--scheduler", "tcp://127.0.0.1:1"])
    assert flag.exit_code == 2
    assert "--workers/--scheduler run the cells of a --grid" in flag.stderr


def test_workers_without_dask_run_serially_with_a_notice(
    run: Run, grid_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    result = run(["backtest", "--grid", grid_file, "--workers", "2", "--json"])
    assert result.exit_code == 0, result.stderr
    assert len(result.json()["body"]["rows"]) == 4
    notice = result.stderr.splitlines()[0]
    assert notice.startswith("dask is not installed: running serially;")
    assert "pip install 'stagectl[dist]'" in notice
