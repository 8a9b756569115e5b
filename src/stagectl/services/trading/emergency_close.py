"""``stagectl emergency-close``: the seed 002 rollback plan and seed 003's kill switch.

Steps (docs/operations.md, "Rollback and emergency close"):

1. set the trading state to REDUCE_ONLY (when it is ACTIVE; HALTED stays HALTED);
2. cancel every open order of the selected symbols;
3. close every position with reduce-only MARKET orders, in up to
   ``emergency_steps.MAX_ROUNDS`` rounds (a round cancels what is left of the previous
   round's orders, then closes what is still open, so a partial fill is finished by the
   next round);
4. set the trading state to HALTED;
5. verify: read positions and open orders again; anything left is the residual.

Each step is recorded as an incident (rule ``EMERGENCY_CLOSE``) in the state database.
This module opens the state database and the venues and runs plan, confirm, execute;
the plan (book, steps in words, close ids) is ``services.emergency_plan``, the broker
steps and their incidents ``services.emergency_steps``.

No close is ever sent twice. A close order's client order id is a function of the
account, the symbol, the signed position it closes and a sequence number
(``stagectl.domain.orders.client_order_id``); before sending, the id is looked up at
the broker, and an id the broker already knows is never sent again (the next sequence
number is used only when that earlier order is finished). The orders are reduce-only,
so even a stale order cannot flip a position, and ``CcxtBroker.place`` recovers an
order accepted before a dropped connection instead of sending it again.

Paper books (``--paper``, the default) are the paper accounts of run-live's paper runs
in the home's state database (``runs.account``), and the trading state set is the paper
mode's; ``--exchange`` closes the live account and sets the live mode's state. The
paper broker fills market orders on the next bar, so here a close fills on a flat bar
at the position's last mark (its entry price when it was never marked), with the
strategy config's slippage and taker fee.

Entry: ``run(EmergencyCloseRequest, *, home, confirm, clock, policy, rate_limit) ->
EmergencyCloseResult``. ``confirm`` is shown the plan and raises to stop (by default
nothing is confirmed: only a dry run, or a book with nothing to do, goes through);
``clock`` stamps the incidents; ``policy`` (the exchange retry policy) and
``rate_limit`` (ccxt's own throttle) are how the exchange is spoken to, which tests tune.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from stagectl.config.home import Home
from stagectl.config.state_url import state_exists
from stagectl.domain.types import TradingState
from stagectl.errors import InputError
from stagectl.exchange.errors import ExchangeError
from stagectl.exchange.retry import RetryPolicy
from stagectl.services.trading.emergency_plan import (
    RULE,
    EmergencyCloseResult,
    Now,
    Venue,
    close_order_id,
    prepare,
)
from stagectl.services.trading.emergency_steps import execute, halt_only, trading_mode
from stagectl.state import flags, runs
from stagectl.state.db import StateDB, open_state

__all__ = [
    "RULE",
    "EmergencyCloseRequest",
    "EmergencyCloseResult",
    "close_order_id",
    "run",
]


@dataclass(frozen=True)
class EmergencyCloseRequest:
    """``paper`` closes run-live's paper books; otherwise ``exchange`` with credentials
    from the environment or key file (docs/exchange.md)."""

    paper: bool = True
    exchange: str = "binanceusdm"
    base_url: str | None = None
    symbols: list[str] | None = None
    dry_run: bool = False
    halt_if_unreachable: bool = False
    reason: str = "emergency close (stagectl emergency-close)"
    timeout_ms: int = 10_000


Confirm = Callable[[EmergencyCloseResult], None]


def _not_confirmed(plan: EmergencyCloseResult) -> None:
    """The default ``confirm``: a caller that did not say how to confirm changes nothing."""
    raise InputError("the emergency close was not confirmed", where="--yes")


def run(
    request: EmergencyCloseRequest,
    *,
    home: Home,
    confirm: Confirm = _not_confirmed,
    clock: Now = lambda: datetime.now(UTC),
    policy: RetryPolicy | None = None,
    rate_limit: bool = True,
) -> EmergencyCloseResult:
    """Plan, confirm (``confirm`` raises to stop), then execute; ``--dry-run`` stops after
    the plan and writes nothing (not even a new state database)."""
    path, now = home.state_path, clock
    mode = "paper" if request.paper else request.exchange

    def exchange_venue() -> Venue:
        return _exchange_venue(request, policy=policy, rate_limit=rate_limit)

    if request.dry_run and not state_exists(path):
        venues = [] if request.paper else [exchange_venue()]
        return prepare(
            TradingState.ACTIVE,
            venues,
            mode=mode,
            state_db=str(path),
            symbols=request.symbols,
            dry_run=True,
        )
    db = open_state(path, migrate=not request.dry_run)
    try:
        venues = _paper_venues(db, home) if request.paper else [exchange_venue()]
        state = flags.get_trading_state(db, trading_mode(mode)).state
        try:
            result = prepare(
                state,
                venues,
                mode=mode,
                state_db=str(path),
                symbols=request.symbols,
                dry_run=request.dry_run,
            )
        except ExchangeError as error:
            if request.dry_run or not request.halt_if_unreachable:
                raise
            halt_only(db, mode, now=now, reason=request.reason, why=str(error))
            raise type(error)(
                f"{error.message}; trading is set HALTED locally, the positions are unknown: "
                "rerun emergency-close when the exchange answers"
            ) from error
        if request.dry_run:
            return result
        if not result.nothing_to_do:
            confirm(result)
        return execute(db, venues, result, now=now, reason=request.reason)
    finally:
        db.close()


def _exchange_venue(
    request: EmergencyCloseRequest, *, policy: RetryPolicy | None, rate_limit: bool
) -> Venue:
    from stagectl.exchange.ccxt_broker import open_broker
    from stagectl.exchange.credentials import require_credentials

    broker = open_broker(
        request.exchange,
        credentials=require_credentials(),
        base_url=request.base_url,
        timeout_ms=request.timeout_ms,
        policy=policy,
        rate_limit=rate_limit,
    )
    return Venue(account=request.exchange, broker=broker)


def _paper_venues(db: StateDB, home: Home) -> list[Venue]:
    """One venue per paper book of run-live's paper runs (account ``paper:<run id>``)."""
    from stagectl.config.loader import load_strategy
    from stagectl.exchange.paper import PaperBroker
    from stagectl.state.paper_book import StatePaperStore

    config, _ = load_strategy(home)
    fee_bps = Decimal(repr(config.costs.fee_bps))
    slippage_bps = Decimal(repr(config.costs.slippage_bps))
    venues = []
    for paper_run in runs.list_runs(db, kind="run-live", mode="paper", limit=10_000):
        store = StatePaperStore(db, account=paper_run.account or f"paper:{paper_run.run_id}")
        if store.load_book() is None:
            continue
        broker = PaperBroker(
            store,
            initial_balance=Decimal(0),
            taker_fee_bps=fee_bps,
            maker_fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            start=paper_run.started_at,
        )
        venues.append(Venue(store.account, broker, _paper_settle(broker)))
    return sorted(venues, key=lambda v: v.account)


def _paper_settle(broker: Any) -> Callable[[str], None]:
    """Fill the paper broker's resting market orders on a flat bar at the last mark."""
    from stagectl.exchange.paper import Bar

    def settle(symbol: str) -> None:
        held = [p for p in broker.positions() if p.symbol == symbol]
        if not held:
            return
        price = held[0].mark_price or held[0].entry_price
        clock = broker.clock
        broker.process_bar(symbol, Bar(clock, clock, price, price, price, price))

    return settle
