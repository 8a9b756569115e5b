"""The router's parents and post-only orders through real ccxt against the loopback exchange
(docs/run-live.md, "Working a parent order"): a SIGKILL in the middle of a parent and a
restart send no slice twice; a wide book sends the order post-only (TIF GTX)."""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from stagectl.config.home import Home
from stagectl.domain.orders import child_order_id
from stagectl.exchange.credentials import require_credentials
from stagectl.services.live import run as service
from stagectl.services.live.execution import EXECUTION_STYLE
from stagectl.state import parents
from stagectl.state.db import open_state
from stagectl.state.journal import events
from tests.exchange_sim import ExchangeSim
from tests.integration.test_run_live_ccxt import (
    HOUR,
    ORDER,
    T0,
    SimClock,
    _assert_consistent,
    _wait_for,
    fresh_account,
    loopback_sim,
    sim_broker,
    spawn_child,
)


@pytest.fixture(scope="module")
def sim_module() -> Iterator[ExchangeSim]:
    with loopback_sim() as sim:
        yield sim


@pytest.fixture
def sim(sim_module: ExchangeSim) -> Iterator[ExchangeSim]:
    fresh = fresh_account(sim_module)
    yield fresh
    fresh.state.book_spread_bps = Decimal(1)


def child_main(argv: list[str]) -> None:
    """The loop without position caps (orders large enough to slice) in a child process:
    ``HOME BASE_URL END_ISO``."""
    from tests.integration.test_run_live_ccxt import HttpSimClock

    home_root, base_url, end = argv
    result = service.run(
        service.RunLiveRequest(live=True, end=datetime.fromisoformat(end), position_limits=False),
        home=Home(root=Path(home_root)),
        live_broker=sim_broker(base_url, require_credentials()),
        clock=HttpSimClock(base_url),
    )
    print(json.dumps(result.summary(), default=str))


def _child(home: Home, sim: ExchangeSim, end: datetime) -> subprocess.Popen[str]:
    return spawn_child(__name__, str(home.root), sim.base_url, end.isoformat())


@pytest.mark.slow  # two child processes (~25 s)
def test_sigkill_in_the_middle_of_a_parent_then_restart_sends_no_slice_twice(
    sim: ExchangeSim, tmp_path: Path
) -> None:
    """The window's first TWAP parent (SOLUSDT at T0 + 1h, two slices) is the 2nd and 4th
    order the run sends: the kill lands while the exchange accepts its second slice."""
    home = Home(root=tmp_path / "killed")
    home.root.mkdir()
    end = T0 + 5 * HOUR
    sim.inject_latency(0.0, count=3, path=ORDER, method="POST")
    sim.inject_latency(1.0, path=ORDER, method="POST")
    first = _child(home, sim, end)
    _wait_for(lambda: len(sim.requests(ORDER, "POST")) >= 4, first, "the second slice's create")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    _wait_for(lambda: len(sim.orders) == 4, first, "the exchange to accept the slice")
    with open_state(home.state_path) as db:
        (run_id,) = db.conn.execute("SELECT run_id FROM runs").fetchone()
        (parent,) = parents.run_parents(db, run_id)
    assert parent.next_index == 2 and parent.sent_qty == parent.qty  # both slices decided
    second = _child(home, sim, end)
    stdout, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["resumed"] and summary["status"] == "completed"
    assert summary["orders_recovered"] >= 1 and summary["slice_fills"] == "venue"
    _assert_consistent(sim, home, run_id)
    children = {child_order_id(parent.parent_id, i) for i in range(parent.plan.planned)}
    on_exchange = Counter(o.client_order_id for o in sim.orders)
    assert all(on_exchange[cid] == 1 for cid in children)
    filled = sum((o.executed_qty for o in sim.orders if o.client_order_id in children), Decimal(0))
    assert filled == parent.qty
    with open_state(home.state_path) as db:
        done = parents.get_parent(db, parent.parent_id)
    assert done is not None and done.status == parents.DONE


def test_a_wide_book_sends_the_order_post_only_as_gtx(sim: ExchangeSim, tmp_path: Path) -> None:
    sim.state.book_spread_bps = Decimal(30)
    home = Home(root=tmp_path / "post-only")
    home.root.mkdir()
    result = service.run(
        service.RunLiveRequest(live=True, end=T0 + 2 * HOUR),
        home=home,
        live_broker=sim_broker(sim.base_url),
        clock=SimClock(sim),
    )
    assert result.status == "completed"
    with open_state(result.state_path) as db:
        styles = events(db, run_id=result.run_id, event_type=EXECUTION_STYLE)
    posted = [e for e in styles if e.payload["style"] == "post_only"]  # type: ignore[index]
    assert posted and all(e.payload["spread_bps"] > 10 for e in posted)  # type: ignore[index]
    sent = {o.client_order_id: o for o in sim.orders}
    for event in posted:
        order = sent[event.payload["client_order_id"]]  # type: ignore[index]
        assert (order.type, order.time_in_force) == ("LIMIT", "GTX")
