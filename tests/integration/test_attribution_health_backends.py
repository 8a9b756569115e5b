"""Attribution and health read the same on SQLite and PostgreSQL: a paper run's decisions
carry their realized PnL (the write-back's UPDATE), the loop latency is kept (migration
0017), the attribution reconciles and every run check passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from stagectl.config.home import Home
from stagectl.config.state_url import StateLocation
from stagectl.services.ledger import attribution
from stagectl.services.live import run as live
from stagectl.services.trading import health

START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, 23, tzinfo=UTC)


def test_attribution_reconciles_and_health_passes_on_either_backend(
    tmp_path: Path, state_url: StateLocation
) -> None:
    root = tmp_path / "home"
    root.mkdir()
    home = Home(root=root, state_override=state_url)
    request = live.RunLiveRequest(start=START, end=END, breakers=False, guard=False)
    run_id = live.run(request, home=home).run_id
    result = attribution.run(
        attribution.AttributionRequest(START, END + timedelta(hours=1), run_id=run_id), home=home
    )
    assert result.reconciled and result.unattributed == []
    assert result.ledger_realized != 0 and result.fees > 0
    checked = health.run(health.HealthRequest(now=END + timedelta(minutes=80)), home=home)
    statuses = {c.name: c.status for c in checked.checks}
    assert checked.run_id == run_id and checked.passed
    assert set(statuses.values()) == {"PASS", "SKIP"}
    assert statuses["loop latency"] == statuses["data gaps"] == "PASS"
