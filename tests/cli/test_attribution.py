"""stagectl attribution on a real paper run over the bundled data: the loop's decision
events, their realized PnL, and the reconciliation to the ledger."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run

WINDOW = ["--start", "2026-03-01", "--end", "2026-03-04"]


@pytest.fixture
def paper_run(run: Run) -> str:
    result = run(["run-live", *WINDOW, "--no-guard", "--json"])
    assert result.exit_code == 0, result.stderr
    return str(result.json()["run_id"])


def _db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "state" / "stagectl.db")


def _body(run: Run, *args: str) -> tuple[int, dict[str, Any], str]:
    result = run(["attribution", *args, "--json"])
    return result.exit_code, result.json()["body"], result.stderr


def test_every_decision_is_a_standard_event_and_trades_carry_their_realized_pnl(
    run: Run, home: Path, paper_run: str
) -> None:
    with _db(home) as conn:
        rows = conn.execute(
            "SELECT symbol, features_hash, engine_votes_json, consensus_score, action, size_usd,"
            " price, regime, costs_bps, realized_pnl, payload_json FROM events"
            " WHERE run_id = ? AND event_type = 'DECISION'",
            (paper_run,),
        ).fetchall()
        bars = conn.execute(
            "SELECT count(*) FROM equity_snapshots WHERE run_id = ?", (paper_run,)
        ).fetchone()[0]
    assert len(rows) == 2 * bars  # ETHUSDT and SOLUSDT, every bar
    for symbol, fhash, votes, score, action, size, price, regime, _, _, payload in rows:
        assert symbol and fhash and "tsmom" in votes and score is not None and price > 0
        assert action in ("buy", "sell", "wait") and regime and '"venue":"paper"' in payload
        assert (size > 0) == (action != "wait")
    trades = [r for r in rows if r[4] != "wait"]
    assert trades and all(r[8] is not None for r in trades)  # the pre-trade cost
    assert any(r[9] is not None and r[9] != 0 for r in trades)


def test_the_attributed_total_reconciles_to_the_ledger_and_the_loop_to_a_cent(
    run: Run, home: Path, paper_run: str
) -> None:
    code, body, _ = _body(run, *WINDOW, "--run", paper_run, "--unsigned")
    assert code == 0
    totals, recon = body["totals"], body["reconciliation"]
    assert recon["reconciled"] is True and recon["unattributed"] == []
    assert abs(totals["attributed_net_pnl"] - totals["ledger_net_pnl"]) <= 0.01
    with _db(home) as conn:
        realized, fees, funding = conn.execute(
            "SELECT realized, fees, funding FROM equity_snapshots WHERE run_id = ?"
            " ORDER BY ts DESC LIMIT 1",
            (paper_run,),
        ).fetchone()
    # the loop's own carried book: realized gross - fees - funding
    assert abs(totals["ledger_net_pnl"] - (realized - fees - funding)) <= 0.01
    for group in ("sleeve", "engine", "regime", "venue"):
        net = sum(b["net_pnl"] for b in body["by"][group].values())
        assert abs(net - totals["attributed_net_pnl"]) <= 1e-6
    assert set(body["by"]["sleeve"]) == {"ETHUSDT", "SOLUSDT"} and list(body["by"]["venue"]) == [
        "paper"
    ]
    costs = body["costs"]
    assert costs["fees"]["usd"] > 0 and costs["fees"]["share_of_gross"] > 0
    gross = totals["ledger_net_pnl"] + sum(c["usd"] for c in costs.values())
    assert abs(gross - totals["gross_pnl"]) <= 1e-6


def test_a_planted_discrepancy_exits_1_with_the_difference(
    run: Run, home: Path, paper_run: str
) -> None:
    with _db(home) as conn:
        conn.execute(
            "UPDATE events SET realized_pnl = coalesce(realized_pnl, 0) + 5 WHERE id = ("
            "SELECT id FROM events WHERE event_type = 'DECISION' AND action != 'wait' LIMIT 1)"
        )
    code, body, stderr = _body(run, *WINDOW, "--unsigned")
    assert code == 1
    assert body["reconciliation"]["reconciled"] is False
    assert body["reconciliation"]["difference_usd"] == pytest.approx(5.0, abs=1e-6)
    assert "does NOT reconcile" in stderr and "+5.0000" in stderr


def test_the_human_view_the_html_page_and_a_signed_out_file(
    run: Run, home: Path, paper_run: str, hmac_key: str
) -> None:
    out, page = home / "reports" / "attribution.json", home / "attribution.html"
    out.parent.mkdir(exist_ok=True)
    result = run(["attribution", *WINDOW, "--out", out, "--html", page])
    assert result.exit_code == 0, result.stderr
    assert "PnL by regime" in result.stdout and "reconciles" in result.stdout
    assert out.is_file() and page.read_text().startswith("<!DOCTYPE html>")
    assert run(["report", "verify", out]).exit_code == 0


def test_day_takes_a_date_today_or_yesterday_and_bad_windows_are_exit_2(run: Run) -> None:
    for day in ("today", "yesterday", "2026-03-02"):
        result = run(["attribution", "--day", day, "--json"])
        assert result.exit_code == 0, result.stderr
    assert run(["attribution", "--day", "2026-03-02"]).exit_code == 0
    body = run(["attribution", "--day", "2026-03-02", "--json"]).json()["body"]
    assert body["window"] == {"start": "2026-03-02T00:00:00Z", "end": "2026-03-03T00:00:00Z"}
    for bad in (
        ["--day", "2026-13-01"],
        ["--day", "2026-03-02", "--start", "2026-03-01"],
        ["--start", "2026-03-01"],
        ["--start", "2026-03-02", "--end", "2026-03-01"],
    ):
        result = run(["attribution", *bad])
        assert result.exit_code == 2, bad
        assert len(result.stderr.strip().splitlines()) == 1
