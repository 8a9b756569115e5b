"""The five artifacts of seed 002, rebuilt from the state database (docs/run-live.md).

Everything comes from rows the loop committed (orders, fills, and the journal's
SIZED_DOWN, ORDER_DENIED, ORDER_REJECTED, RECONCILIATION and MARGIN_SNAPSHOT events),
so a resumed run writes the artifacts of the whole run, and each file is written
atomically (temp file + rename) under ``<artifacts.dir>/<run id>/``: stage3.yaml's
``artifacts.dir`` (``artifacts/stage3``), relative to the home unless absolute.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagectl.config.home import Home
from stagectl.domain.order_policy import ENFORCEMENT_CODES
from stagectl.domain.orders import child_order_id
from stagectl.domain.types import Order
from stagectl.reports import write_atomic
from stagectl.state.db import StateDB
from stagectl.state.journal import events
from stagectl.state.ledger import fills
from stagectl.state.orders import run_orders
from stagectl.state.parents import ParentOrder, run_parents

if TYPE_CHECKING:
    from stagectl.config.stage3 import Stage3Config

ARTIFACT_FILES = (
    "reconciliation_history.json",
    "sized_down_events.json",
    "margin_snapshots.json",
    "execution_logs.json",
    "rejection_breakdown.json",
)
SIZED_DOWN = "SIZED_DOWN"
ORDER_DENIED = "ORDER_DENIED"
ORDER_REJECTED = "ORDER_REJECTED"
RECONCILIATION = "RECONCILIATION"
MARGIN_SNAPSHOT = "MARGIN_SNAPSHOT"
ACCEPTED_STATUSES = ("open", "filled", "canceled", "expired", "partially_filled")


def run_artifacts_dir(home: Home, stage3: Stage3Config, run_id: str) -> Path:
    """A run's artifact directory: ``<home>/<stage3 artifacts.dir>/<run id>``."""
    return home.root / Path(stage3.artifacts.dir).expanduser() / run_id


def build_artifacts(db: StateDB, run_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The five documents, keyed by file name."""

    def payloads(event_type: str) -> list[dict[str, Any]]:
        return [
            {"ts": e.ts, "symbol": e.symbol, "severity": e.severity, **dict(e.payload or {})}
            for e in events(db, run_id=run_id, event_type=event_type)
        ]

    orders = run_orders(db, run_id)
    recorded = {o.client_order_id for o in orders}
    run_fills = fills(db, run_id=run_id)
    by_order: dict[str, list[dict[str, Any]]] = {}
    for fill in run_fills:
        by_order.setdefault(fill.client_order_id or "", []).append(
            {
                "trade_id": fill.trade_id,
                "ts": fill.ts,
                "qty": str(fill.qty),
                "price": str(fill.price),
                "fee": str(fill.fee),
                "liquidity": fill.liquidity,
            }
        )
    margin = payloads(MARGIN_SNAPSHOT)
    return {
        "reconciliation_history.json": {
            "run_id": run_id,
            "identity": "equity = initial + realized + unrealized - fees - funding",
            "tolerance_usd": settings["tolerance_usd"],
            "drift_alert_usd": settings["drift_alert_usd"],
            "snapshots": payloads(RECONCILIATION),
        },
        "sized_down_events.json": {
            "run_id": run_id,
            "max_impact_bps": settings["max_impact_bps"],
            "events": payloads(SIZED_DOWN),
        },
        "margin_snapshots.json": {
            "run_id": run_id,
            "warning_pct": settings["margin_warning_pct"],
            "critical_pct": settings["margin_critical_pct"],
            "snapshots": margin,
            "transitions": [m for m in margin if m.get("transition")],
        },
        "execution_logs.json": {
            "run_id": run_id,
            "orders": [_order_log(o, by_order.get(o.client_order_id, [])) for o in orders],
            "parents": [_parent_log(p, recorded) for p in run_parents(db, run_id)],
        },
        "rejection_breakdown.json": rejection_breakdown(
            run_id, orders, payloads(ORDER_DENIED), payloads(ORDER_REJECTED)
        ),
    }


def _order_log(order: Order, order_fills: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "client_order_id": order.client_order_id,
        "exchange_order_id": order.exchange_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "type": order.type,
        "time_in_force": order.time_in_force,
        "qty": str(order.qty),
        "price": None if order.price is None else str(order.price),
        "stop_price": None if order.stop_price is None else str(order.stop_price),
        "reduce_only": order.reduce_only,
        "status": order.status,
        "filled_qty": str(order.filled_qty),
        "reason": order.reason,
        "recorded_at": order.created_at,
        "updated_at": order.updated_at,
        "fills": order_fills,
    }


def _parent_log(parent: ParentOrder, recorded: set[str]) -> dict[str, Any]:
    """A parent the router worked as slices (docs/run-live.md, "Working a parent order"):
    its style and why, its progress, and the client ids of the slices it sent (each is an
    order above)."""
    sent = (child_order_id(parent.parent_id, i) for i in range(parent.next_index))
    return {
        "parent_id": parent.parent_id,
        "symbol": parent.symbol,
        "side": parent.side,
        "qty": str(parent.qty),
        "style": parent.plan.style,
        "reason": parent.plan.reason,
        "slices_planned": parent.plan.planned,
        "status": parent.status,
        "sent_qty": str(parent.sent_qty),
        "slices": [child for child in sent if child in recorded],
        "created_at": parent.created_at,
        "note": parent.note,
    }


def rejection_breakdown(
    run_id: str,
    orders: list[Order],
    denials: list[dict[str, Any]],
    rejections: list[dict[str, Any]],
) -> dict[str, Any]:
    """Counts and the effective acceptance rate (seed 002: excluding enforcement).

    ``acceptance_rate_pct = accepted / decided``; ``effective_acceptance_rate_pct =
    accepted / (decided - enforcement denials)``, where decided counts every order the
    loop decided (sent or denied) and enforcement denials are the policy doing its job
    (gated TIF, halted or reduce-only state, position and leverage caps, size rounding).
    """
    denied = Counter(str(d.get("code")) for d in denials)
    rejected = Counter(str(r.get("code", "EXCHANGE_REJECTED")) for r in rejections)
    accepted = sum(1 for o in orders if o.status in ACCEPTED_STATUSES)
    decided = sum(1 for o in orders if o.status not in ("new", "not_sent"))
    enforcement = sum(n for code, n in denied.items() if code in ENFORCEMENT_CODES)
    eligible = decided - enforcement
    return {
        "run_id": run_id,
        "orders_decided": decided,
        "orders_accepted": accepted,
        "denied_by_policy": dict(sorted(denied.items())),
        "rejected_by_exchange": dict(sorted(rejected.items())),
        "enforcement_denials": enforcement,
        "acceptance_rate_pct": _pct(accepted, decided),
        "effective_acceptance_rate_pct": _pct(accepted, eligible),
        "stop_limit_orders": {
            "placed": sum(1 for o in orders if o.type == "stop_limit"),
            "accepted": sum(
                1 for o in orders if o.type == "stop_limit" and o.status in ACCEPTED_STATUSES
            ),
            "triggered_filled": sum(
                1 for o in orders if o.type == "stop_limit" and o.status == "filled"
            ),
        },
    }


def _pct(part: int, whole: int) -> float | None:
    return None if whole <= 0 else round(100.0 * part / whole, 4)


def _jsonable(value: Any) -> Any:
    from datetime import datetime

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def write_artifact_files(directory: Path, documents: dict[str, Any]) -> list[Path]:
    """Write each document atomically as indented JSON; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in documents.items():
        path = directory / name
        text = json.dumps(_jsonable(document), indent=2, sort_keys=True, allow_nan=False)
        write_atomic(path, (text + "\n").encode("utf-8"))
        written.append(path)
    return written
