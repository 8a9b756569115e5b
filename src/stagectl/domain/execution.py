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
Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
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
