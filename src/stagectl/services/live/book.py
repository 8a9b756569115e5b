"""What run-live carries from one bar to the next (docs/run-live.md, "Carried state").

A bar needs, from the bars before it: the run's FIFO lots and realized totals (for the
reconciliation), the funding paid per sleeve, where the fills and funding it has
recorded end (so it asks the venue only for what is new), the last target of each
sleeve, the sleeves stopped out or left short by an order that did not fill in full, the
margin window, and each sleeve's capital and the capital rebalances moved into it.
:class:`RunBook` holds exactly that; it is built once from the state database when a run
starts or resumes (:func:`load_run_book`, one read of the run's rows) and then moved
along by each bar's settlement, so a bar costs the same on day 1 and on day 365.

A settlement works on a copy and the loop keeps it only once its write transaction has
committed: a bar whose write fails leaves the book as the database has it, and the next
bar asks the venue again for everything after the recorded cursor.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from stagectl.domain.decide import Targets
from stagectl.domain.ledger_book import FifoBook
from stagectl.domain.types import Fill, FundingPayment
from stagectl.state import journal, ledger
from stagectl.state.db import StateDB
from stagectl.state.equity import last_snapshot, peak_equity

_ZERO = Decimal(0)
FUNDING_LOOKBACK = timedelta(days=1)
"""How far back each bar asks the venue for funding (a late settlement is still seen)."""
MARGIN_SNAPSHOT = "MARGIN_SNAPSHOT"


@dataclass
class RunBook:
    """The run's carried state; see the module docstring."""

    fifo: FifoBook = field(default_factory=FifoBook)
    funding_paid: dict[str, Decimal] = field(default_factory=dict)
    fill_cursor: dict[str, datetime] = field(default_factory=dict)
    """Per symbol, the time of the last recorded fill."""
    fills_at_cursor: dict[str, frozenset[str]] = field(default_factory=dict)
    """Per symbol, the trade ids recorded at exactly that time (the venue returns them again)."""
    funding_seen: frozenset[tuple[str, datetime]] = frozenset()
    """(symbol, time) of the funding settlements recorded within the lookback."""
    targets: Targets = field(default_factory=Targets)
    margin_window: str = "NORMAL"
    transfers: dict[str, float] = field(default_factory=dict)
    """Per sleeve, the capital the weekly rebalances moved into it (< 0: out of it)."""
    capital: dict[str, float] = field(default_factory=dict)
    """Per sleeve, its capital at the last settlement: standalone equity + transfers."""
    peak_equity: float = 0.0
    """The run's highest settled equity (its equity snapshots' maximum): the live drawdown
    gauge's reference, carried across a restart."""

    def copy(self) -> RunBook:
        return replace(
            self,
            fifo=self.fifo.copy(),
            funding_paid=dict(self.funding_paid),
            fill_cursor=dict(self.fill_cursor),
            fills_at_cursor=dict(self.fills_at_cursor),
            transfers=dict(self.transfers),
            capital=dict(self.capital),
        )

    def is_new_fill(self, fill: Fill) -> bool:
        """Not recorded yet: after the cursor, or at it with an id not seen there."""
        cursor = self.fill_cursor.get(fill.symbol)
        if cursor is None or fill.ts > cursor:
            return True
        return fill.ts == cursor and fill.trade_id not in self.fills_at_cursor.get(
            fill.symbol, frozenset()
        )

    def add_fill(self, fill: Fill) -> Decimal:
        """Book a new fill and move the symbol's cursor to it; its gross realized PnL."""
        realized = self.fifo.add(fill)
        cursor = self.fill_cursor.get(fill.symbol)
        if cursor is None or fill.ts > cursor:
            self.fill_cursor[fill.symbol] = fill.ts
            self.fills_at_cursor[fill.symbol] = frozenset({fill.trade_id})
        else:
            self.fills_at_cursor[fill.symbol] = self.fills_at_cursor[fill.symbol] | {fill.trade_id}
        return realized

    def add_funding(self, payment: FundingPayment, now: datetime) -> None:
        """Book a new settlement (``amount`` > 0 received) and forget ones past the lookback."""
        paid = self.funding_paid.get(payment.symbol, _ZERO) + payment.paid
        self.funding_paid[payment.symbol] = paid
        horizon = now - 2 * FUNDING_LOOKBACK
        self.funding_seen = frozenset(
            key for key in self.funding_seen | {(payment.symbol, payment.ts)} if key[1] >= horizon
        )

    def funding_cursor(self, bar_ts: datetime) -> datetime:
        return bar_ts - FUNDING_LOOKBACK


def load_run_book(db: StateDB, run_id: str) -> RunBook:
    """The carried state of ``run_id`` as its recorded rows give it (empty for a new run)."""
    book = RunBook()
    for row in ledger.fills(db, run_id=run_id):
        book.add_fill(row)
    for payment in ledger.funding_payments(db, run_id=run_id):
        book.funding_paid[payment.symbol] = (
            book.funding_paid.get(payment.symbol, _ZERO) + payment.paid
        )
        book.funding_seen = book.funding_seen | {(payment.symbol, payment.ts)}
    book.peak_equity = peak_equity(db, run_id) or 0.0
    snapshot = last_snapshot(db, run_id)
    if snapshot is not None:
        last: dict[str, float] = {}
        stopped: set[str] = set()
        unfilled: set[str] = set()
        for symbol, sleeve in snapshot.sleeves.items():
            if isinstance(sleeve, dict):
                last[symbol] = float(sleeve.get("position", 0.0))
                if sleeve.get("stopped"):
                    stopped.add(symbol)
                if sleeve.get("unfilled"):
                    unfilled.add(symbol)
                if "equity" in sleeve:
                    equity = float(sleeve["equity"])
                    capital = float(sleeve.get("capital", equity))
                    book.capital[symbol] = capital
                    book.transfers[symbol] = capital - equity
        book.targets = Targets(last, frozenset(stopped), frozenset(unfilled))
    margin = journal.last_event(db, run_id=run_id, event_type=MARGIN_SNAPSHOT)
    if margin is not None and margin.payload:
        book.margin_window = str(margin.payload.get("window", "NORMAL"))
    return book
