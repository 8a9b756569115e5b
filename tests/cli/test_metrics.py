"""stagectl metrics: exit paths, --json, and the window arithmetic on a hand-computed ledger."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.conftest import Run

LEDGER = """timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity
2025-01-01T00:00:00Z,1,SOLUSDT,buy,100,2,0.02,USDT,taker
2025-01-01T00:30:00Z,2,SOLUSDT,buy,110,1,-0.011,USDT,maker
2025-01-01T01:10:00Z,3,SOLUSDT,sell,120,2.5,-0.03,USDT,maker
2025-01-01T01:20:00Z,4,SOLUSDT,sell,90,1,0.009,USDT,taker
2025-01-01T02:30:00Z,5,SOLUSDT,buy,80,1,0,USDT,taker
"""
UNTIL = "2025-01-01T02:00:00Z"


@pytest.fixture
def ledger(run: Run, tmp_path: Path) -> Path:
    path = tmp_path / "ledger.csv"
    path.write_text(LEDGER)
    assert run(["metrics", "import", path]).exit_code == 0
    return path


def test_window_arithmetic_on_a_hand_computed_ledger(run: Run, ledger: Path) -> None:
    # Lots carried in: +2 @ 100, +1 @ 110. Fill 3 sells 2.5 @ 120: 2 x 20 + 0.5 x 10 = 45,
    # rebate 0.03 -> 45.03. Fill 4 sells 1 @ 90: 0.5 x (90 - 110) = -10 and opens -0.5 @ 90,
    # fee 0.009 -> -10.009. Fill 5 is after the window.
    result = run(["metrics", "window", "--hours", "1", "--until", UNTIL, "--json"])
    assert result.exit_code == 0, result.stderr
    document = result.json()
    sol = document["symbols"]["SOLUSDT"]
    assert document["window"] == {
        "start": "2025-01-01T01:00:00Z",
        "until": "2025-01-01T02:00:00Z",
        "seconds": 3600.0,
    }
    assert (sol["fills"], sol["buys"], sol["sells"]) == (2, 0, 2)
    assert (sol["maker_fills"], sol["taker_fills"], sol["maker_share"]) == (1, 1, 0.5)
    assert sol["volume_base"] == "3.5"
    assert sol["notional_quote"] == "390.0"
    assert sol["fees_quote"] == "-0.021"
    assert sol["cash_flow_quote"] == "390.021"
    assert sol["realized_fifo_quote"] == "35.021"
    assert (sol["inventory_start"], sol["inventory_end"]) == ("3", "-0.5")
    assert (sol["mark_price"], sol["mark_source"], sol["unrealized_quote"]) == (
        "90",
        "last_fill",
        "0.0",
    )
    assert document["total"]["realized_fifo_quote"] == "35.021"


def test_window_with_a_given_mark_values_the_open_short_at_it(run: Run, ledger: Path) -> None:
    args = ["metrics", "window", "--seconds", "3600", "--until", UNTIL, "--mark", "SOLUSDT=80"]
    sol = run([*args, "--json"]).json()["symbols"]["SOLUSDT"]
    assert (sol["mark_source"], sol["unrealized_quote"]) == ("given", "5.0")


def test_window_prints_a_table_without_json(run: Run, ledger: Path) -> None:
    result = run(["metrics", "window", "--hours", "1", "--until", UNTIL])
    assert result.exit_code == 0
    assert "35.02" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("total")


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--hours", "1", "--seconds", "5"], "--hours/--seconds"),
        ([], "--hours/--seconds"),
        (["--hours", "0"], "Invalid value for '--hours'"),
        (["--hours", "1", "--until", "yesterday"], "--until"),
        (["--hours", "1", "--mark", "SOLUSDT=-1"], "--mark"),
    ],
)
def test_window_usage_errors_exit_2(run: Run, ledger: Path, args: list[str], where: str) -> None:
    result = run(["metrics", "window", *args, "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"stagectl: {where}: ")


def test_window_without_a_state_database_is_an_input_error(run: Run) -> None:
    result = run(["metrics", "window", "--hours", "1"])
    assert result.exit_code == 2
    assert "stagectl init" in result.stderr


def test_import_errors_exit_2(run: Run, tmp_path: Path) -> None:
    missing = run(["metrics", "import", tmp_path / "nope.csv"])
    assert missing.exit_code == 2
    assert "no such file" in missing.stderr
    unknown = tmp_path / "trades.txt"
    unknown.write_text("x")
    assert "--format" in run(["metrics", "import", unknown]).stderr
    no_column = tmp_path / "t.csv"
    no_column.write_text("timestamp,trade_id,side,price\n")
    result = run(["metrics", "import", no_column, "--symbol", "SOLUSDT"])
    assert result.exit_code == 2
    assert result.stderr == f"stagectl: {no_column}:1: missing column(s): amount\n"
    not_json = tmp_path / "t.json"
    not_json.write_text("{")
    assert run(["metrics", "import", not_json]).exit_code == 2


def test_import_refuses_a_fee_in_a_third_currency(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "bnb.csv"
    path.write_text(
        LEDGER.splitlines()[0] + "\n2025-01-01T00:00:00Z,1,SOLUSDT,buy,100,2,0.1,BNB,maker\n"
    )
    result = run(["metrics", "import", path])
    assert result.exit_code == 2
    assert f"{path}:2: fee_currency:" in result.stderr


def test_export_windows_writes_consecutive_windows(run: Run, ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "windows.csv"
    args = ["metrics", "export-windows", "--window", "3600", "--symbol", "SOLUSDT"]
    result = run([*args, "--start", "2025-01-01T00:00:00Z", "--end", UNTIL, "--out", out])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["window_start"] for r in rows] == ["2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z"]
    assert [float(r["realized_fifo_quote"]) for r in rows] == [-0.009, 35.021]
    assert [float(r["inventory_delta_base"]) for r in rows] == [3.0, -3.5]
    assert float(rows[1]["mid_end"]) == 90.0
    assert "mids from fill prices" in result.stderr


def test_export_windows_to_stdout_defaults_to_the_fill_span(run: Run, ledger: Path) -> None:
    result = run(["metrics", "export-windows", "--window", "3600"])
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 3
    assert sum(int(r["fills"]) for r in rows) == 5


def test_export_windows_with_several_symbols_needs_symbol(
    run: Run, ledger: Path, tmp_path: Path
) -> None:
    other = tmp_path / "eth.csv"
    other.write_text(LEDGER.replace("SOLUSDT", "ETHUSDT"))
    run(["metrics", "import", other])
    result = run(["metrics", "export-windows"])
    assert result.exit_code == 2
    assert result.stderr.startswith("stagectl: --symbol: the ledger holds several symbols")


def test_metrics_without_subcommand_shows_help_and_exits_2(run: Run) -> None:
    result = run(["metrics"])
    assert result.exit_code == 2
    assert "import" in result.stderr


@pytest.mark.parametrize("quoted", [False, True], ids=["plain", "quoted"])
def test_a_spreadsheet_csv_with_a_byte_order_mark_imports_like_the_plain_file(
    run: Run, tmp_path: Path, quoted: bool
) -> None:
    text = LEDGER.replace("SOLUSDT", '"SOLUSDT"') if quoted else LEDGER
    path = tmp_path / "from-a-spreadsheet.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = run(["metrics", "import", path, "--json"])
    assert result.exit_code == 0, result.stderr
    window = run(["metrics", "window", "--hours", "1", "--until", UNTIL, "--json"]).json()
    assert window["symbols"]["SOLUSDT"]["fills"] == 2
