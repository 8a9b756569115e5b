"""The pre-trade order policy of seed 002: TIF, trading state, hard caps, impact, leverage.

:func:`apply_policy` takes a proposed :class:`~stagectl.domain.types.Order` and the
market around it and returns the order that may be sent (possibly smaller) or a
:class:`~stagectl.domain.guards.Denial`, plus the policy events it produced. Nothing
here reads a clock or does I/O.

Conventions:

- Quantities are base units (Decimal), prices quote per base; ``position_qty`` is the
  signed position before the order (> 0 long). The limit price of a LIMIT or STOP_LIMIT
  order is its ``price``; the policy's TIF tables are keyed by the order type's name
  (``MARKET``, ``LIMIT``, ``STOP_LIMIT``, as in config/stage3.yaml). The position
  after the order is ``position + s * qty`` with ``s = +1`` for a buy, ``-1`` for a sell.
- An order *increases exposure* when ``|after| > |position|``. A reducing order is
  never blocked by the position caps or the leverage limit, so a book beyond a limit can
  always be worked back inside it.
- Checks run in this order, each on the output of the one before:

  1. validity (qty > 0, a positive reference price);
  2. time in force: an order type/TIF pair in ``gated`` is denied ``TIF_GATED`` (seed 002:
     LIMIT GTD stays gated); one not in ``allowed`` is denied ``TIF_NOT_ALLOWED``; MARKET
     carries no TIF;
  3. trading state: HALTED denies everything (``TRADING_HALTED``); REDUCE_ONLY, and any
     order flagged ``reduce_only``, must reduce: an order on the wrong side is denied
     ``REDUCE_ONLY``, and one larger than the position is cut to the position
     (``SIZED_DOWN``, code ``REDUCE_ONLY``), since a reduce-only order may not flip it;
  4. hard caps on the post-trade position: ``|after| <= min(max_size, max_notional /
     price)`` (seed 002 "position limits", a *size-down*: the order is cut to the cap,
     code ``POSITION_LIMIT``) and the leverage limit ``(other_gross_notional + |after| *
     price) / equity <= leverage_limit`` (code ``LEVERAGE_LIMIT``). When nothing of the
     increase fits, the order is denied with that code;
  5. impact: ``impact_bps = sqrt(participation) * 5`` (seed 001, ``costs.slippage_bps``
     with zero spread), ``participation = qty * price / bar_dollar_volume``. Above
     ``max_impact_bps`` the order is cut to the largest size within it,
     ``qty_max = bar_dollar_volume * (max_impact_bps / 5)^2 / price`` (code ``MAX_IMPACT``);
  6. rounding down to ``qty_step``; nothing left is denied ``BELOW_MIN_QTY``.

  Every cut emits one ``SIZED_DOWN`` event with the original and adjusted quantity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

from stagectl.domain.costs import IMPACT_COEFFICIENT_BPS, slippage_bps
from stagectl.domain.guards import Denial
from stagectl.domain.types import Order, OrderType, Side, TimeInForce, TradingState

SIZED_DOWN = "SIZED_DOWN"
ORDER_DENIED = "ORDER_DENIED"

INVALID_ORDER = "INVALID_ORDER"
TIF_GATED = "TIF_GATED"
TIF_NOT_ALLOWED = "TIF_NOT_ALLOWED"
TRADING_HALTED = "TRADING_HALTED"
REDUCE_ONLY = "REDUCE_ONLY"
POSITION_LIMIT = "POSITION_LIMIT"
LEVERAGE_LIMIT = "LEVERAGE_LIMIT"
MAX_IMPACT = "MAX_IMPACT"
NO_LIQUIDITY = "NO_LIQUIDITY"
BELOW_MIN_QTY = "BELOW_MIN_QTY"

ENFORCEMENT_CODES = frozenset(
    {TIF_GATED, TRADING_HALTED, REDUCE_ONLY, POSITION_LIMIT, LEVERAGE_LIMIT, BELOW_MIN_QTY}
)
"""Denials that are the policy doing its job (seed 002: acceptance excludes them)."""

_ZERO = Decimal(0)
_PCT = Decimal(100)
_BPS = Decimal(10_000)


@dataclass(frozen=True)
class SymbolCap:
    """Seed 002 per-symbol hard caps on the position: base units and USD notional."""

    max_size: Decimal
    max_notional_usd: Decimal


@dataclass(frozen=True)
class PolicyLimits:
    """What the policy enforces (config/stage3.yaml gives the seed-002 values).

    ``allowed``/``gated`` map an order type to its times in force; ``symbol_caps`` may
    omit a symbol (no cap). ``qty_step`` is the quantity increment orders round down to.
    """

    max_impact_bps: Decimal = Decimal(50)
    leverage_limit: Decimal = Decimal(1)
    stop_distance_pct: Decimal = Decimal(2)
    allowed: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"LIMIT": ("GTC", "IOC"), "STOP_LIMIT": ("GTC",), "MARKET": ()}
    )
    gated: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"LIMIT": ("GTD",)})
    symbol_caps: Mapping[str, SymbolCap] = field(default_factory=dict)
    qty_step: Decimal = Decimal("0.000001")
    impact_coefficient_bps: float = IMPACT_COEFFICIENT_BPS


@dataclass(frozen=True)
class MarketContext:
    """What the policy knows at decision time.

    ``price`` is the reference (last close or mark); ``bar_dollar_volume`` the last
    closed bar's volume x close; ``other_gross_notional`` the sum of ``|qty| * price``
    of the positions in every other symbol.
    """

    price: Decimal
    bar_dollar_volume: Decimal
    position_qty: Decimal
    equity: Decimal
    other_gross_notional: Decimal = _ZERO
    trading_state: TradingState = TradingState.ACTIVE


@dataclass(frozen=True)
class PolicyEvent:
    """A SIZED_DOWN or ORDER_DENIED record with its code and details."""

    event_type: str
    code: str
    symbol: str
    side: Side
    original_qty: Decimal
    adjusted_qty: Decimal
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)


PolicyResult = tuple[Order | Denial, list[PolicyEvent]]


def impact_bps(qty: Decimal, price: Decimal, bar_dollar_volume: Decimal, coef: float) -> float:
    """Seed 001 impact, ``sqrt(qty * price / bar_dollar_volume) * coef`` bps."""
    participation = float(qty * price / bar_dollar_volume)
    return float(slippage_bps(0.0, participation, coef))


def max_qty_for_impact(
    max_impact: Decimal, price: Decimal, bar_dollar_volume: Decimal, coef: float
) -> Decimal:
    """The largest qty with ``impact_bps <= max_impact``: ``V * (max / coef)^2 / price``."""
    ratio = max_impact / Decimal(repr(coef))
    return bar_dollar_volume * ratio * ratio / price


def signed(side: Side) -> int:
    return side.sign


def apply_policy(order: Order, market: MarketContext, limits: PolicyLimits) -> PolicyResult:
    """The order that may be sent, or a Denial; conventions in the module docstring."""
    events: list[PolicyEvent] = []
    denial = _validity(order, market) or _time_in_force(order, limits)
    if denial is None and market.trading_state == TradingState.HALTED:
        denial = Denial(TRADING_HALTED, "trading is HALTED: no order is sent")
    if denial is not None:
        return _deny(order, denial, events)
    steps = (_reduce_only, _caps, _impact, _round)
    current = order
    for step in steps:
        outcome = step(current, market, limits)
        if isinstance(outcome, Denial):
            return _deny(current, outcome, events)
        new_order, event = outcome
        if event is not None:
            events.append(event)
        current = new_order
    return current, events


def _deny(order: Order, denial: Denial, events: list[PolicyEvent]) -> PolicyResult:
    events.append(
        PolicyEvent(
            ORDER_DENIED, denial.code, order.symbol, order.side, order.qty, _ZERO, denial.reason
        )
    )
    return denial, events


def _validity(order: Order, market: MarketContext) -> Denial | None:
    if not order.qty.is_finite() or order.qty <= 0:
        return Denial(INVALID_ORDER, f"quantity must be positive, got {order.qty}")
    if not market.price.is_finite() or market.price <= 0:
        return Denial(INVALID_ORDER, f"no usable reference price ({market.price})")
    if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and (
        order.price is None or order.price <= 0
    ):
        return Denial(INVALID_ORDER, f"a {order.type.name} order needs a positive limit price")
    if order.type == OrderType.STOP_LIMIT and (order.stop_price is None or order.stop_price <= 0):
        return Denial(INVALID_ORDER, "a STOP_LIMIT order needs a positive stop price")
    return None


def _time_in_force(order: Order, limits: PolicyLimits) -> Denial | None:
    tif, kind = order.time_in_force, order.type.name
    if order.type == OrderType.MARKET:
        if tif is not None:
            return Denial(TIF_NOT_ALLOWED, f"a MARKET order carries no time in force, got {tif}")
        return None
    if tif in limits.gated.get(kind, ()):
        return Denial(
            TIF_GATED,
            f"{kind} {tif} is gated by the order policy (seed 002); "
            f"use one of {', '.join(limits.allowed.get(kind, ())) or 'none'}",
        )
    allowed = limits.allowed.get(kind)
    if allowed is None or tif not in allowed:
        return Denial(
            TIF_NOT_ALLOWED,
            f"{kind} {tif} is not allowed (allowed: {', '.join(allowed or ()) or 'none'})",
        )
    return None


Step = tuple[Order, PolicyEvent | None] | Denial


def _sized(
    order: Order,
    new_qty: Decimal,
    code: str,
    reason: str,
    step: Decimal,
    **details: Any,
) -> Step:
    """Cut ``order`` to ``new_qty`` rounded down to ``step``; nothing left is a denial."""
    new_qty = new_qty.quantize(step, rounding=ROUND_DOWN)
    if new_qty <= 0:
        return Denial(code, f"{reason}; nothing is left at the step {step}")
    event = PolicyEvent(
        SIZED_DOWN, code, order.symbol, order.side, order.qty, new_qty, reason, details
    )
    return replace(order, qty=new_qty), event


def _reduce_only(order: Order, market: MarketContext, limits: PolicyLimits) -> Step:
    must_reduce = order.reduce_only or market.trading_state == TradingState.REDUCE_ONLY
    if not must_reduce:
        return order, None
    position = market.position_qty
    why = "the order is reduce-only" if order.reduce_only else "trading is REDUCE_ONLY"
    if position == 0 or (position > 0) == (order.side == Side.BUY):
        return Denial(
            REDUCE_ONLY, f"{why} and a {order.side} would increase the position ({position})"
        )
    if order.qty > abs(position):
        return _sized(
            order,
            abs(position),
            REDUCE_ONLY,
            f"{why}: cut to the position so it cannot flip",
            limits.qty_step,
            position_qty=str(position),
        )
    return order, None


def _max_qty_for_cap(position: Decimal, side: Side, cap_units: Decimal) -> Decimal:
    """The largest qty with ``|position + s * qty| <= cap_units`` (may be <= 0)."""
    if signed(side) * position >= 0:
        return cap_units - abs(position)
    return abs(position) + cap_units


def _caps(order: Order, market: MarketContext, limits: PolicyLimits) -> Step:
    position, price = market.position_qty, market.price
    after = position + signed(order.side) * order.qty
    if abs(after) <= abs(position):
        return order, None
    caps: list[tuple[Decimal, str, str]] = []
    symbol_cap = limits.symbol_caps.get(order.symbol)
    if symbol_cap is not None:
        caps.append((symbol_cap.max_size, POSITION_LIMIT, f"max_size {symbol_cap.max_size}"))
        caps.append(
            (
                symbol_cap.max_notional_usd / price,
                POSITION_LIMIT,
                f"max_notional {symbol_cap.max_notional_usd} USD",
            )
        )
    headroom = limits.leverage_limit * market.equity - market.other_gross_notional
    caps.append(
        (max(headroom, _ZERO) / price, LEVERAGE_LIMIT, f"leverage limit {limits.leverage_limit}x")
    )
    cap_units, code, label = min(caps, key=lambda cap: cap[0])
    allowed = _max_qty_for_cap(position, order.side, cap_units)
    if allowed >= order.qty:
        return order, None
    if allowed <= 0:
        return Denial(
            code,
            f"{order.symbol} position {position} is already at the {label} "
            f"(cap {_fmt(cap_units)} units at {price})",
        )
    return _sized(
        order,
        allowed,
        code,
        f"post-trade position capped by the {label}",
        limits.qty_step,
        cap_units=_fmt(cap_units),
        price=str(price),
        position_qty=str(position),
    )


def _impact(order: Order, market: MarketContext, limits: PolicyLimits) -> Step:
    volume, price, coef = market.bar_dollar_volume, market.price, limits.impact_coefficient_bps
    if not volume.is_finite() or volume <= 0:
        return Denial(NO_LIQUIDITY, f"no traded volume on the last bar of {order.symbol}")
    before = impact_bps(order.qty, price, volume, coef)
    if before <= float(limits.max_impact_bps):
        return order, None
    allowed = max_qty_for_impact(limits.max_impact_bps, price, volume, coef)
    allowed = allowed.quantize(limits.qty_step, rounding=ROUND_DOWN)
    return _sized(
        order,
        allowed,
        MAX_IMPACT,
        f"estimated impact {before:.2f} bps is above {limits.max_impact_bps} bps",
        limits.qty_step,
        impact_bps_before=round(before, 4),
        impact_bps_after=round(impact_bps(allowed, price, volume, coef), 4) if allowed else 0.0,
        max_impact_bps=float(limits.max_impact_bps),
        bar_dollar_volume=str(volume),
    )


def _round(order: Order, market: MarketContext, limits: PolicyLimits) -> Step:
    rounded = order.qty.quantize(limits.qty_step, rounding=ROUND_DOWN)
    if rounded <= 0:
        return Denial(
            BELOW_MIN_QTY, f"{_fmt(order.qty)} rounds to zero at the step {limits.qty_step}"
        )
    return replace(order, qty=rounded), None


def stop_limit_for(
    symbol: str,
    position_qty: Decimal,
    entry_price: Decimal,
    limits: PolicyLimits,
    *,
    client_order_id: str,
    created_at: datetime,
    limit_offset_bps: Decimal = Decimal(10),
    price_step: Decimal = Decimal("0.00000001"),
) -> Order:
    """The protective stop-limit of a position, ``stop_distance_pct`` from its entry.

    Long: sell stop at ``entry * (1 - d)``, limit ``offset`` bps below the stop. Short:
    buy stop at ``entry * (1 + d)``, limit ``offset`` bps above. Reduce-only, GTC, for the
    whole position; prices rounded half-even to ``price_step``.
    """
    if position_qty == 0:
        raise ValueError("a flat position needs no stop")
    distance = limits.stop_distance_pct / _PCT
    offset = limit_offset_bps / _BPS
    if position_qty > 0:
        side = Side.SELL
        stop = entry_price * (1 - distance)
        limit = stop * (1 - offset)
    else:
        side = Side.BUY
        stop = entry_price * (1 + distance)
        limit = stop * (1 + offset)
    return Order(
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        type=OrderType.STOP_LIMIT,
        qty=abs(position_qty),
        created_at=created_at,
        time_in_force=TimeInForce.GTC,
        reduce_only=True,
        price=limit.quantize(price_step, rounding=ROUND_HALF_EVEN),
        stop_price=stop.quantize(price_step, rounding=ROUND_HALF_EVEN),
    )


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}" if value == value.to_integral() else f"{value:.8f}"
