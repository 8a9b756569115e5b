"""stagectl emergency-close: confirmation, --dry-run, paper books, exit paths, no secrets."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from stagectl.exchange.credentials import KEY_ENV, SECRET_ENV
from stagectl.exchange.paper import Bar, PaperBroker
from stagectl.state import runs
from stagectl.state.db import open_state
from stagectl.state.paper_book import StatePaperStore
from tests.conftest import Run
from tests.orders import new_order

START = datetime(2024, 1, 3, tzinfo=UTC)
HOUR = timedelta(hours=1)
SECRET = "cli-secret-never-shown-0123456789"
API_KEY = "cli-key-never-shown-0123456789"


def paper_book(home: Path) -> None:
    """A paper run with a long ETH, a short SOL and a resting limit order."""
    with open_state(home / "state" / "stagectl.db") as db:
        runs.start_run(db, runs.Run("run-1", "run-live", "paper", START, account="paper:run-1"))
        broker = PaperBroker(
            StatePaperStore(db, account="paper:run-1"),
            initial_balance=Decimal(10_000),
            taker_fee_bps=Decimal(5),
            maker_fee_bps=Decimal(2),
            slippage_bps=Decimal(3),
            start=START,
        )
        broker.place(new_order("ETHUSDT", "buy", "market", Decimal("0.5"), "sc-eth"))
        broker.place(new_order("SOLUSDT", "sell", "market", Decimal("4"), "sc-sol"))
        for symbol, price in (("ETHUSDT", Decimal(2300)), ("SOLUSDT", Decimal(100))):
            broker.process_bar(symbol, Bar(START, START + HOUR, price, price, price, price))
        broker.place(new_order("ETHUSDT", "buy", "limit", Decimal("0.1"), "sc-rest", Decimal(2000)))


def test_without_yes_and_without_a_terminal_it_refuses_with_exit_2(run: Run, home: Path) -> None:
    result = run(["emergency-close"])
    assert result.exit_code == 2 and "--yes" in result.stderr
    assert not (home / "state").exists()


def test_dry_run_shows_the_plan_and_changes_nothing(run: Run, home: Path) -> None:
    paper_book(home)
    before = (home / "state" / "stagectl.db").read_bytes()
    result = run(["emergency-close", "--dry-run", "--json"])
    assert result.exit_code == 1  # the book is not flat
    document = result.json()
    assert document["dry_run"] is True and document["steps"] == []
    assert {(p["symbol"], p["amount"]) for p in document["positions_before"]} == {
        ("ETHUSDT", "0.5"),
        ("SOLUSDT", "-4"),
    }
    assert any("REDUCE_ONLY" in step for step in document["plan"])
    assert (home / "state" / "stagectl.db").read_bytes() == before
    text = run(["emergency-close", "--dry-run"])
    assert "dry run: nothing was changed" in text.stdout


def test_dry_run_on_an_empty_home_creates_no_database(run: Run, home: Path) -> None:
    result = run(["emergency-close", "--dry-run", "--json"])
    assert result.exit_code == 0 and result.json()["flat"] is True
    assert not (home / "state").exists()


def test_yes_closes_the_paper_book_halts_and_a_second_run_does_nothing(
    run: Run, home: Path
) -> None:
    paper_book(home)
    result = run(["emergency-close", "--yes", "--json"])
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert document["flat"] is True and document["trading_state_after"] == "HALTED"
    assert document["residual_positions"] == [] and document["residual_open_orders"] == []
    assert {o["symbol"]: o["side"] for o in document["orders"]} == {
        "ETHUSDT": "sell",
        "SOLUSDT": "buy",
    }
    modes = run(["trading", "status", "--json"]).json()["modes"]
    assert (modes["paper"]["trading_state"], modes["live"]["trading_state"]) == (
        "HALTED",
        "ACTIVE",
    )
    again = run(["emergency-close", "--yes"])
    assert again.exit_code == 0 and "nothing to do" in again.stdout


def test_symbol_limits_the_close_to_that_symbol(run: Run, home: Path) -> None:
    paper_book(home)
    document = run(["emergency-close", "--yes", "--symbol", "SOLUSDT", "--json"]).json()
    assert [o["symbol"] for o in document["orders"]] == ["SOLUSDT"]
    assert document["flat"] is True
    left = run(["emergency-close", "--dry-run", "--json"]).json()["positions_before"]
    assert [p["symbol"] for p in left] == ["ETHUSDT"]


@pytest.mark.parametrize(
    "args",
    [
        ["--paper", "--exchange", "binanceusdm"],
        ["--base-url", "http://127.0.0.1:9"],
        ["--exchange", "no-such-exchange"],
    ],
)
def test_bad_flags_are_exit_2(run: Run, args: list[str]) -> None:
    result = run(["emergency-close", "--yes", *args], env={KEY_ENV: API_KEY, SECRET_ENV: SECRET})
    assert result.exit_code == 2


def test_an_exchange_without_credentials_is_exit_2(run: Run) -> None:
    result = run(
        ["emergency-close", "--yes", "--exchange", "binanceusdm"],
        env={KEY_ENV: None, SECRET_ENV: None, "STAGECTL_EXCHANGE_KEY_FILE": None},
    )
    assert result.exit_code == 2 and KEY_ENV in result.stderr


def test_an_unreachable_exchange_is_exit_3_and_no_secret_is_printed(run: Run) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run(
        [
            "emergency-close",
            "--yes",
            "--json",
            "--exchange",
            "binanceusdm",
            "--base-url",
            f"http://127.0.0.1:{port}",
        ],
        env={KEY_ENV: API_KEY, SECRET_ENV: SECRET},
    )
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "HALTED" in result.stderr
    for secret in (SECRET, API_KEY):
        assert secret not in result.stdout + result.stderr
    modes = run(["trading", "status", "--json"]).json()["modes"]
    assert (modes["paper"]["trading_state"], modes["live"]["trading_state"]) == (
        "ACTIVE",
        "HALTED",
    )
