"""The execution style of an order: seed 001 #8's rules, in one order of precedence.

Seed 001 names five styles and when to use each: post-only maker when the spread is
wider than 10 bps, TWAP for persistent signals (persistence above 70 %), POV for orders
above 10 % of the average volume, iceberg above $50k, plain limit/market for small
orders. Several rules can hold at once (a $60k order in a wide market), so
:func:`choose_style` applies them in one order, from the constraint that costs the most
when ignored to the one that costs the least:

1. **POV** when the order is more than 10 % of the average bar dollar volume: the
   market cannot absorb it at once whatever its dollar size, so the order trades as a
   fixed share of the volume;
2. **iceberg** when the notional is above $50k (and the market can absorb it): only a
   slice shows on the book;
3. **TWAP** when the signal is persistent (above 70 %): nothing is lost by spreading
   the order over the coming bars;
4. **post-only** when the spread is wider than 10 bps: a maker order earns the spread
   instead of paying it;
5. otherwise **market** for an order that must reduce risk now (``urgent``: a flatten,
   a breaker, the kill switch) and **limit** for the rest.

An urgent order skips rules 1-4: a desk that must be flat does not wait for slices.

A sliced style works the parent as child orders, one per bar (:func:`plan_parent`,
:func:`child_qty`): **TWAP** cuts it into ``twap_bars`` equal slices; **iceberg** shows a
clip of ``iceberg_clip_usd`` per bar; **POV** sends ``pov_share`` x the last bar's volume
per bar until the parent is done. Quantities are rounded down to the venue's step and
the remainder goes in the last slice, so the slices sum exactly to the parent. No slice
is smaller than ``min_slice_usd`` (the venue's minimum notional and the fixed cost of
an order make smaller ones pointless): a parent that cannot be cut into two such slices
is sent as one order (:attr:`ParentPlan.sliced` is False). Each child's client id is
derived from the parent's and the slice's index (``domain.orders.child_order_id``).
Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from enum import StrEnum


class ExecutionStyle(StrEnum):
    """How a parent order is worked (seed 001 #8)."""

    MARKET = "market"
    LIMIT = "limit"
    POST_ONLY = "post_only"
    TWAP = "twap"
    POV = "pov"
    ICEBERG = "iceberg"

    @property
    def sliced(self) -> bool:
        """True for the styles that send the parent as child orders over time."""
        return self in (ExecutionStyle.TWAP, ExecutionStyle.POV, ExecutionStyle.ICEBERG)


@dataclass(frozen=True)
class StyleThresholds:
    """Seed 001 #8's thresholds."""

    post_only_spread_bps: float = 10.0
    twap_persistence: float = 0.70
    pov_volume_share: float = 0.10
    iceberg_notional_usd: Decimal = Decimal("50000")


@dataclass(frozen=True)
class StyleInputs:
    """What the style rules read about one parent order and its market."""

    notional_usd: Decimal
    spread_bps: float
    signal_persistence: float
    """The share of recent bars whose signal had the order's sign, in [0, 1]."""
    avg_bar_volume_usd: Decimal
    """The average dollar volume of one bar; 0 when unknown (rule 1 is then skipped)."""
    urgent: bool = False


@dataclass(frozen=True)
class StyleChoice:
    """The style and the rule that chose it, for the event and the preview."""

    style: ExecutionStyle
    reason: str


def choose_style(
    inputs: StyleInputs, thresholds: StyleThresholds = StyleThresholds()
) -> StyleChoice:
    """The execution style of one parent order by the rules above, first match wins."""
    if inputs.urgent:
        return StyleChoice(ExecutionStyle.MARKET, "urgent: reduce risk now")
    volume = inputs.avg_bar_volume_usd
    if volume > 0 and inputs.notional_usd > volume * Decimal(str(thresholds.pov_volume_share)):
        share = float(inputs.notional_usd / volume)
        return StyleChoice(
            ExecutionStyle.POV,
            f"order is {share:.1%} of the average bar volume (> {thresholds.pov_volume_share:.0%})",
        )
    if inputs.notional_usd > thresholds.iceberg_notional_usd:
        return StyleChoice(
            ExecutionStyle.ICEBERG,
            f"notional ${inputs.notional_usd:,.0f} > ${thresholds.iceberg_notional_usd:,.0f}",
        )
    if inputs.signal_persistence > thresholds.twap_persistence:
        return StyleChoice(
            ExecutionStyle.TWAP,
            f"signal persistence {inputs.signal_persistence:.0%}"
            f" > {thresholds.twap_persistence:.0%}",
        )
    if inputs.spread_bps > thresholds.post_only_spread_bps:
        return StyleChoice(
            ExecutionStyle.POST_ONLY,
            f"spread {inputs.spread_bps:.1f} bps > {thresholds.post_only_spread_bps:g} bps",
        )
    return StyleChoice(ExecutionStyle.LIMIT, "small order in a tight market")


@dataclass(frozen=True)
class SliceSettings:
    """How a sliced parent is cut (our defaults: the seed names no figures)."""

    twap_bars: int = 4
    pov_share: Decimal = Decimal("0.10")
    """A POV slice's share of the last bar's volume (seed 001's 10 % threshold)."""
    iceberg_clip_usd: Decimal = Decimal("10000")
    """The visible clip of an iceberg: the seed's $50k threshold / 5."""
    min_slice_usd: Decimal = Decimal("1000")


@dataclass(frozen=True)
class ParentPlan:
    """A routed order: its style and why, and the slices planned (1: one order).

    ``schedule`` holds the child quantities of a TWAP or iceberg parent; a POV parent's
    slices follow the volume bar by bar (:func:`child_qty`), so its schedule is empty and
    ``planned`` is the estimate at the parent's average volume."""

    style: ExecutionStyle
    reason: str
    planned: int
    schedule: tuple[Decimal, ...] = ()

    @property
    def sliced(self) -> bool:
        return self.style.sliced and self.planned > 1


def plan_parent(
    choice: StyleChoice,
    qty: Decimal,
    price: Decimal,
    step: Decimal,
    avg_bar_volume_usd: Decimal = Decimal(0),
    settings: SliceSettings = SliceSettings(),
) -> ParentPlan:
    """The slices of a parent of ``qty`` (a multiple of ``step``) at ``price``; a sliced
    style whose slices would be under ``min_slice_usd`` falls back to one order."""
    if not choice.style.sliced or qty <= 0 or price <= 0:
        return ParentPlan(choice.style, choice.reason, 1)
    min_qty = _at_least_one_step(settings.min_slice_usd / price, step)
    if choice.style == ExecutionStyle.TWAP:
        most = int(qty // min_qty)
        schedule = equal_slices(qty, min(settings.twap_bars, most), step)
    elif choice.style == ExecutionStyle.ICEBERG:
        clip = max(_at_least_one_step(settings.iceberg_clip_usd / price, step), min_qty)
        schedule = clipped_slices(qty, clip)
    else:
        clip = max(_down(settings.pov_share * avg_bar_volume_usd / price, step), min_qty)
        planned = int((qty / clip).to_integral_value(rounding=ROUND_CEILING))
        if planned > 1:
            return ParentPlan(choice.style, choice.reason, planned)
        schedule = (qty,)
    if len(schedule) < 2:
        reason = f"{choice.reason}; slices would be under ${settings.min_slice_usd:,.0f}: one order"
        return ParentPlan(ExecutionStyle.LIMIT, reason, 1)
    return ParentPlan(choice.style, choice.reason, len(schedule), schedule)


def child_qty(
    plan: ParentPlan,
    qty: Decimal,
    index: int,
    sent: Decimal,
    *,
    price: Decimal,
    bar_volume_usd: Decimal,
    step: Decimal,
    settings: SliceSettings = SliceSettings(),
) -> Decimal:
    """The quantity of slice ``index`` when ``sent`` of the parent's ``qty`` has gone out:
    the schedule's for TWAP and iceberg, ``pov_share`` x the last bar's volume (at least
    ``min_slice_usd``, at most what is left) for POV; 0 when the parent is done."""
    left = qty - sent
    if left <= 0:
        return Decimal(0)
    if plan.schedule:
        return min(plan.schedule[index], left) if index < len(plan.schedule) else Decimal(0)
    min_qty = _at_least_one_step(settings.min_slice_usd / price, step)
    want = max(_down(settings.pov_share * bar_volume_usd / price, step), min_qty)
    return left if left - want < min_qty else want


def equal_slices(qty: Decimal, count: int, step: Decimal) -> tuple[Decimal, ...]:
    """``count`` slices of ``qty``, each rounded down to ``step``, the remainder in the
    last; fewer when ``qty`` has fewer than ``count`` steps."""
    count = min(count, int(qty // step)) if step > 0 else count
    if count <= 1:
        return (qty,)
    base = _down(qty / count, step)
    return (*([base] * (count - 1)), qty - base * (count - 1))


def clipped_slices(qty: Decimal, clip: Decimal) -> tuple[Decimal, ...]:
    """Clips of ``clip`` and the remainder (merged into the last clip when it would be a
    sliver under half a clip, so no slice is tiny)."""
    if clip <= 0 or qty <= clip:
        return (qty,)
    full = int(qty // clip)
    rest = qty - clip * full
    slices: Sequence[Decimal] = [clip] * full
    if rest * 2 >= clip:
        return (*slices, rest)
    return (*slices[:-1], clip + rest)


def _down(value: Decimal, step: Decimal) -> Decimal:
    return value.quantize(step, rounding=ROUND_DOWN) if step > 0 else value


def _at_least_one_step(value: Decimal, step: Decimal) -> Decimal:
    """``value`` rounded up to ``step`` (a minimum must be met, not undercut)."""
    if step <= 0:
        return value
    return max((value / step).to_integral_value(rounding=ROUND_CEILING) * step, step)
