"""A parent's child slices (domain.execution) and their derived client ids (domain.orders)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagectl.domain.execution import (
    ExecutionStyle,
    SliceSettings,
    StyleChoice,
    child_qty,
    plan_parent,
)
from stagectl.domain.orders import CLIENT_ORDER_ID_MAX_LEN, child_order_id, client_order_id

STEPS = st.sampled_from([Decimal("0.001"), Decimal("0.01"), Decimal("1"), Decimal("0.000001")])
STYLES = st.sampled_from([ExecutionStyle.TWAP, ExecutionStyle.ICEBERG, ExecutionStyle.POV])


def _children(
    style: ExecutionStyle,
    steps: int,
    step: Decimal,
    price: Decimal,
    volumes: list[Decimal],
    settings: SliceSettings,
) -> list[Decimal]:
    """Work a parent of ``steps`` quantity steps to the end, one slice per bar."""
    qty = step * steps
    plan = plan_parent(StyleChoice(style, "test"), qty, price, step, volumes[0], settings)
    if not plan.sliced:
        return [qty]
    sent, out = Decimal(0), []
    for index in range(steps + 1):  # each slice is at least one step
        volume = volumes[index % len(volumes)]
        part = child_qty(
            plan, qty, index, sent, price=price, bar_volume_usd=volume, step=step,
            settings=settings,
        )  # fmt: skip
        if part == 0:
            break
        out.append(part)
        sent += part
    return out


@given(
    style=STYLES,
    steps=st.integers(1, 200_000),
    step=STEPS,
    price=st.decimals(Decimal("0.01"), Decimal("100000"), places=2),
    volumes=st.lists(st.decimals(Decimal("0"), Decimal("1e8"), places=2), min_size=1, max_size=8),
    twap_bars=st.integers(2, 12),
)
def test_slices_sum_exactly_to_the_parent_on_its_step(
    style: ExecutionStyle,
    steps: int,
    step: Decimal,
    price: Decimal,
    volumes: list[Decimal],
    twap_bars: int,
) -> None:
    settings = SliceSettings(twap_bars=twap_bars)
    qty = step * steps
    children = _children(style, steps, step, price, volumes, settings)
    assert sum(children, Decimal(0)) == qty
    assert all(c > 0 and c % step == 0 for c in children)
    if len(children) > 1:
        assert all(c * price >= settings.min_slice_usd for c in children)
    if style == ExecutionStyle.TWAP:
        assert len(children) <= twap_bars
        assert max(children) - min(children) < step * len(children)


def test_twap_remainder_goes_in_the_last_slice() -> None:
    plan = plan_parent(
        StyleChoice(ExecutionStyle.TWAP, "persistent"), Decimal("10.003"), Decimal("1000"),
        Decimal("0.001"),
    )  # fmt: skip
    assert plan.schedule == (Decimal("2.500"), Decimal("2.500"), Decimal("2.500"), Decimal("2.503"))


def test_small_parent_is_one_order_and_says_why() -> None:
    plan = plan_parent(
        StyleChoice(ExecutionStyle.TWAP, "persistent"), Decimal("1.5"), Decimal("1000"),
        Decimal("0.001"),
    )  # fmt: skip
    assert not plan.sliced and plan.style == ExecutionStyle.LIMIT
    assert "one order" in plan.reason


def test_pov_follows_the_volume_until_done() -> None:
    step, price, qty = Decimal("0.01"), Decimal("100"), Decimal("1000")  # $100k
    plan = plan_parent(StyleChoice(ExecutionStyle.POV, "big"), qty, price, step, Decimal("200000"))
    assert plan.sliced and plan.planned == 5
    first = child_qty(
        plan, qty, 0, Decimal(0), price=price, bar_volume_usd=Decimal("300000"), step=step
    )
    assert first == Decimal("300.00")  # 10 % of a $300k bar at $100


@given(
    parent=st.text("abcdef0123456789-", min_size=1, max_size=40),
    index=st.integers(0, 10_000),
)
def test_child_ids_are_stable_and_short(parent: str, index: int) -> None:
    one = child_order_id(parent, index)
    assert one == child_order_id(parent, index)
    assert len(one) <= CLIENT_ORDER_ID_MAX_LEN and one.startswith("sc-")
    assert one != child_order_id(parent, index + 1)


def test_child_ids_of_real_parents_are_unique() -> None:
    from datetime import UTC, datetime

    parents = [
        client_order_id("run", s, datetime(2026, 3, 1, h, tzinfo=UTC), "target +0.5")
        for s in ("ETHUSDT", "SOLUSDT")
        for h in range(24)
    ]
    ids = {child_order_id(p, i) for p in parents for i in range(50)}
    assert len(ids) == len(parents) * 50
    assert not ids & set(parents)
    with pytest.raises(ValueError, match="index"):
        child_order_id(parents[0], -1)
