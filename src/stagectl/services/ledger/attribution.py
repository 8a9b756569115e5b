"""``stagectl attribution``: a window's PnL by sleeve/engine, regime and venue, the cost
breakdown, and its reconciliation to the ledger (docs/attribution.md).

Two independent computations meet here:

- **attributed**: the run-live loop's ``DECISION`` events (seed 001 #10) of the window,
  each carrying the FIFO realized PnL (net of fees) the settlement added to it when its
  fills were booked, minus the funding paid in the window (each settlement put on the
  sleeve's latest decision at or before it);
- **ledger**: the exact FIFO (``domain.ledger.fifo_realized``) over each run's fills
  recorded before the window's end (so lots carried into the window are consumed), the
  realized PnL of the fills in the window, minus the funding paid in it.

They reconcile when they differ by at most ``TOLERANCE_USD``. The cost breakdown is from
the ledger's fills: fees (valued in quote), slippage (``(fill price - the price the order
was sized at) x qty``, signed so a cost is positive; inside the realized PnL already) and
funding paid; ``gross = net + fees + slippage + funding`` is the PnL before costs, and
each cost's share is ``cost / |gross|``.

Entry: ``run(AttributionRequest, *, home) -> Attribution``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.domain.decide import DECISION, ENGINE
from stagectl.domain.ledger import fifo_realized
from stagectl.domain.ledger_book import fill_fee_quote
from stagectl.domain.types import Event, Fill, FundingPayment, Order
from stagectl.state import journal, ledger, orders
from stagectl.state.db import StateDB, open_state

TOLERANCE_USD = 0.01
"""The most the attributed total may differ from the ledger's (one cent)."""
UNKNOWN = "unknown"
_ZERO = Decimal(0)


@dataclass(frozen=True)
class AttributionRequest:
    start: datetime
    end: datetime
    run_id: str | None = None
    """One run; None: every run with a decision in the window."""


@dataclass
class Bucket:
    """One group's figures (a sleeve, an engine, a regime or a venue)."""

    decisions: int = 0
    trades: int = 0
    realized: float = 0.0
    """FIFO realized PnL net of fees, as the loop attributed it to the decisions."""
    fees: float = 0.0
    slippage: float = 0.0
    funding: float = 0.0
    """Funding paid (> 0: a cost)."""

    @property
    def net(self) -> float:
        return self.realized - self.funding

    def to_dict(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "trades": self.trades,
            "realized_pnl": round(self.realized, 6),
            "fees": round(self.fees, 6),
            "slippage": round(self.slippage, 6),
            "funding": round(self.funding, 6),
            "net_pnl": round(self.net, 6),
        }


@dataclass
class Attribution:
    request: AttributionRequest
    runs: list[str]
    groups: dict[str, dict[str, Bucket]]
    """``sleeve``, ``engine``, ``regime``, ``venue`` -> label -> figures."""
    ledger_net: float
    ledger_realized: float
    fees: float
    slippage: float
    funding: float
    unattributed: list[str] = field(default_factory=list)
    """Why some of the ledger's PnL has no decision (fills or funding before any)."""

    @property
    def attributed_net(self) -> float:
        return sum(b.net for b in self.groups["sleeve"].values())

    @property
    def difference(self) -> float:
        return self.attributed_net - self.ledger_net

    @property
    def reconciled(self) -> bool:
        return abs(self.difference) <= TOLERANCE_USD

    @property
    def gross(self) -> float:
        """The PnL before costs: net + fees + slippage + funding."""
        return self.ledger_net + self.fees + self.slippage + self.funding

    def costs(self) -> dict[str, dict[str, float | None]]:
        gross = abs(self.gross)
        return {
            name: {
                "usd": round(value, 6),
                "share_of_gross": None if gross == 0 else round(value / gross, 6),
            }
            for name, value in (
                ("fees", self.fees),
                ("slippage", self.slippage),
                ("funding", self.funding),
            )
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": {"start": _iso(self.request.start), "end": _iso(self.request.end)},
            "runs": self.runs,
            "by": {
                group: {label: bucket.to_dict() for label, bucket in sorted(buckets.items())}
                for group, buckets in self.groups.items()
            },
            "totals": {
                "attributed_net_pnl": round(self.attributed_net, 6),
                "ledger_net_pnl": round(self.ledger_net, 6),
                "ledger_realized_pnl": round(self.ledger_realized, 6),
                "gross_pnl": round(self.gross, 6),
            },
            "costs": self.costs(),
            "reconciliation": {
                "reconciled": self.reconciled,
                "difference_usd": round(self.difference, 6),
                "tolerance_usd": TOLERANCE_USD,
                "unattributed": self.unattributed,
            },
        }


def run(request: AttributionRequest, *, home: Home) -> Attribution:
    """Read the window's decisions and the runs' ledger; group and reconcile."""
    with open_state(home.state_path) as db:
        return attribute(db, request)


def attribute(db: StateDB, request: AttributionRequest) -> Attribution:
    decisions = journal.events(
        db, run_id=request.run_id, event_type=DECISION, start=request.start, end=request.end
    )
    runs = sorted({e.run_id for e in decisions if e.run_id is not None})
    if request.run_id is not None and request.run_id not in runs:
        runs = [request.run_id]
    groups: dict[str, dict[str, Bucket]] = {
        name: defaultdict(Bucket) for name in ("sleeve", "engine", "regime", "venue")
    }
    for event in decisions:
        for bucket in _buckets(groups, event):
            bucket.decisions += 1
            bucket.trades += event.action in ("buy", "sell")
            bucket.realized += event.realized_pnl or 0.0
    totals = _Totals()
    unattributed: list[str] = []
    for run_id in runs:
        _add_ledger(db, request, run_id, groups, totals, unattributed)
    return Attribution(
        request,
        runs,
        {name: dict(buckets) for name, buckets in groups.items()},
        ledger_net=float(totals.realized - totals.funding),
        ledger_realized=float(totals.realized),
        fees=float(totals.fees),
        slippage=float(totals.slippage),
        funding=float(totals.funding),
        unattributed=unattributed,
    )


@dataclass
class _Totals:
    realized: Decimal = _ZERO
    fees: Decimal = _ZERO
    slippage: Decimal = _ZERO
    funding: Decimal = _ZERO


def _labels(event: Event) -> dict[str, str]:
    payload = event.payload or {}
    engines = list(event.engine_votes or {}) or [str(payload.get("engine") or ENGINE)]
    return {
        "sleeve": event.symbol or UNKNOWN,
        "engine": "+".join(sorted(engines)),
        "regime": event.regime or UNKNOWN,
        "venue": str(payload.get("venue") or UNKNOWN),
    }


def _buckets(groups: Mapping[str, dict[str, Bucket]], event: Event) -> list[Bucket]:
    return [groups[name][label] for name, label in _labels(event).items()]


class _DecisionIndex:
    """A run's decisions per sleeve in time order: the one in force at a time."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.by_symbol: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            self.by_symbol[event.symbol or ""].append(event)
        self.times = {s: [e.ts for e in es] for s, es in self.by_symbol.items()}

    def at(self, symbol: str, ts: datetime) -> Event | None:
        k = bisect_right(self.times.get(symbol, []), ts)
        return self.by_symbol[symbol][k - 1] if k else None


def _add_ledger(
    db: StateDB,
    request: AttributionRequest,
    run_id: str,
    groups: Mapping[str, dict[str, Bucket]],
    totals: _Totals,
    unattributed: list[str],
) -> None:
    """The run's ledger figures of the window, added to the totals and, through the
    decision in force at each fill or settlement, to the groups' costs."""
    index = _DecisionIndex(
        journal.events(db, run_id=run_id, event_type=DECISION, start=request.start, end=request.end)
    )
    history = sorted(ledger.fills(db, run_id=run_id, end=request.end), key=lambda f: f.ts)
    booked = fifo_realized(history)
    sized_at = {o.client_order_id: o for o in orders.run_orders(db, run_id)}
    for i, fill in enumerate(history):
        if fill.ts < request.start:
            continue
        realized, fee = booked.realized(i), fill_fee_quote(fill)
        slip = _slippage(fill, sized_at)
        totals.realized += realized
        totals.fees += fee
        totals.slippage += slip
        decision = index.at(fill.symbol, fill.ts)
        if decision is None:
            unattributed.append(f"{run_id}: fill {fill.trade_id} at {fill.ts.isoformat()}")
            continue
        for bucket in _buckets(groups, decision):
            bucket.fees += float(fee)
            bucket.slippage += float(slip)
    for payment in ledger.funding_payments(db, run_id=run_id, start=request.start, end=request.end):
        _add_funding(groups, totals, index, payment, run_id, unattributed)


def _add_funding(
    groups: Mapping[str, dict[str, Bucket]],
    totals: _Totals,
    index: _DecisionIndex,
    payment: FundingPayment,
    run_id: str,
    unattributed: list[str],
) -> None:
    totals.funding += payment.paid
    decision = index.at(payment.symbol, payment.ts)
    if decision is None:
        unattributed.append(f"{run_id}: funding {payment.symbol} at {payment.ts.isoformat()}")
        return
    for bucket in _buckets(groups, decision):
        bucket.funding += float(payment.paid)


def _slippage(fill: Fill, sized_at: Mapping[str, Order]) -> Decimal:
    """``(fill price - the order's price) x qty``, positive when it cost: a buy above or a
    sell below the price the order was sized at; 0 without a priced order."""
    order = sized_at.get(fill.client_order_id or "")
    if order is None or order.price is None:
        return _ZERO
    sign = 1 if fill.side.value == "buy" else -1
    return sign * (fill.price - order.price) * fill.qty


def inputs_of(home: Home) -> list[Path]:
    """The report's inputs: the state database when it is a file."""
    path = home.state_path
    return [path] if isinstance(path, Path) else []


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
