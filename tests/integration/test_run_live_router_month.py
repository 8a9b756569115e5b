"""A 30-day paper replay with the router on (issue 16's "done when"): the TWAP parents
and their slices are in the events and in execution_logs.json, and the month's
attribution reconciles to the ledger to the cent."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from stagectl.config.home import Home
from stagectl.domain.execution import ExecutionStyle
from stagectl.domain.orders import child_order_id
from stagectl.services.ledger import attribution
from stagectl.services.live import run as service
from stagectl.services.live.execution import EXECUTION_STYLE, ORDER_SLICE
from stagectl.state.db import open_state
from stagectl.state.journal import events

START, END = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)


def test_a_month_with_the_router_shows_its_slices_and_reconciles(tmp_path: Path) -> None:
    home = Home(root=tmp_path)
    request = service.RunLiveRequest(
        start=START, end=END, breakers=False, guard=False, position_limits=False
    )
    result = service.run(request, home=home)
    assert result.status == "completed" and result.bars == 721

    with open_state(result.state_path) as db:
        styles = [e.payload for e in events(db, run_id=result.run_id, event_type=EXECUTION_STYLE)]
        slices = events(db, run_id=result.run_id, event_type=ORDER_SLICE)
    assert any(p is not None and p["style"] == ExecutionStyle.TWAP for p in styles)

    logs = json.loads((result.artifacts_dir / "execution_logs.json").read_text())
    sent = {order["client_order_id"] for order in logs["orders"]}
    twap = [p for p in logs["parents"] if p["style"] == "twap"]
    assert twap, "no TWAP parent in execution_logs.json"
    for parent in twap:
        ids = [child_order_id(parent["parent_id"], i) for i in range(len(parent["slices"]))]
        assert parent["slices"] == ids and set(ids) <= sent
        assert parent["parent_id"] not in sent
    assert len(slices) == sum(len(p["slices"]) for p in logs["parents"])

    month = attribution.run(attribution.AttributionRequest(START, END), home=home)
    assert month.reconciled, (month.attributed_net, month.ledger_net)
    assert sum(b.trades for b in month.groups["sleeve"].values()) > 0
