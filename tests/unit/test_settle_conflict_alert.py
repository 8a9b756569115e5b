"""A run's fill for a trade the ledger holds with other values becomes a CRITICAL
FILL_CONFLICT alert event naming the trade, the values and the record kept (the run's
own fill path once dropped it without a word; state.ledger.insert_fills now reports it,
tests/integration/test_state_ledger.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from stagectl.services.live import settle
from stagectl.state.fill_conflicts import FillConflict, StoredFill


def test_the_alert_names_the_trade_the_differences_and_the_record_kept() -> None:
    conflict = FillConflict(
        position=0,
        symbol="ETHUSDT",
        trade_id="sc-1-1",
        differences=(("price", "2047.5", "2048"),),
        stored=StoredFill(10, "import", 3, "binance-trades-2026-03.csv", "ab" * 32),
    )
    ctx: Any = SimpleNamespace(run_id="paper-1")
    data: Any = SimpleNamespace(close_ts=datetime(2026, 3, 2, 17, tzinfo=UTC))
    event = settle._conflict_alert(ctx, data, conflict)
    assert (event.event_type, event.severity, event.action) == (
        "ALERT",
        "CRITICAL",
        "FILL_CONFLICT",
    )
    assert event.run_id == "paper-1" and event.symbol == "ETHUSDT"
    assert event.message == (
        "trade ETHUSDT:sc-1-1 is recorded (fill 10, import of "
        "binance-trades-2026-03.csv) with other values: price 2047.5 (recorded 2048); "
        "the ledger kept its record"
    )
    assert event.payload["differences"] == [["price", "2047.5", "2048"]]
