"""What one state row adds to the live guard's hourly inputs (docs/risk-guard.md, "Live
mode: what is read"): shared by the full-history read (``history.build_inputs``, cron)
and the incremental one (``stream``, run-live's loop), so both count the same things.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stagectl.domain.types import Fill
from stagectl.state.equity import EquitySnapshot

MISMATCH_TOLERANCE = 1e-9


def hour_of(ts: datetime) -> datetime:
    """The hour a row belongs to: its time floored to the hour (UTC)."""
    return ts.replace(minute=0, second=0, microsecond=0)


def sleeve_value(snapshot: EquitySnapshot, sleeve: str, key: str) -> float:
    """``sleeves_json[sleeve][key]`` of a snapshot; NaN when missing or not a number."""
    entry = snapshot.sleeves.get(sleeve)
    value = entry.get(key) if isinstance(entry, dict) else None
    return float(value) if isinstance(value, int | float) else math.nan


def order_key(fill: Fill) -> str:
    """The order a fill executes: its client order id, else the venue's order id, else
    the trade itself (a trade is an order filled, however many fills it took)."""
    return str(fill.client_order_id or fill.order_id or f"trade:{fill.trade_id}")


def slippage_bps(fill: Fill, signal: float) -> float:
    """``side x (fill - signal) / signal x 1e4``: adverse positive."""
    side = 1.0 if fill.side == "buy" else -1.0
    return side * (float(fill.price) - signal) / signal * 1e4


def signal_mismatch(payload: Mapping[str, Any] | None) -> float | None:
    """A ``signal_check`` event's verdict: 1.0 when the paper and replay targets differ,
    0.0 when they agree, None when the event does not hold both."""
    checked = dict(payload or {})
    paper, replay = checked.get("paper"), checked.get("replay")
    if not isinstance(paper, int | float) or not isinstance(replay, int | float):
        return None
    return float(abs(float(paper) - float(replay)) >= MISMATCH_TOLERANCE)


def unavailable(
    *,
    sleeve_equity_missing: bool,
    state_missing: bool,
    no_priced_fills: bool,
    no_signal_checks: bool,
) -> list[str]:
    """The report's "not available" notes: what the state lacks, and what it leaves NaN."""
    notes = []
    if sleeve_equity_missing:
        notes.append("sleeve equity (sleeves_json.equity): sleeve MDD and contribution")
    if state_missing:
        notes.append("sleeve states (sleeves_json.state or position): position state")
    if no_priced_fills:
        notes.append("signal prices (the fills' order prices): realized slippage")
    if no_signal_checks:
        notes.append("signal checks (events of type 'signal_check'): signal consistency")
    return notes
