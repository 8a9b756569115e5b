"""``services.ledger.batches.trade_batch`` groups rows into kinds from the codes validation
already computed: the same staged trades as factorizing every column again."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from stagectl.data.trade_validation import validate_values
from stagectl.services.ledger.batches import trade_batch

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def columns(seed: int, rows: int = 700) -> dict[str, list[str]]:
    rng = random.Random(seed)
    out: dict[str, list[str]] = {
        name: []
        for name in (
            "timestamp",
            "trade_id",
            "symbol",
            "side",
            "price",
            "amount",
            "fee",
            "fee_currency",
            "liquidity",
            "order_id",
        )
    }
    for k in range(rows):
        symbol = rng.choice(["SOLUSDT", "ethusdt", "ETH/USDT", "SOLUSDT"])
        out["timestamp"].append(f"2025-01-01T00:{k // 60 % 60:02d}:{k % 60:02d}Z")
        out["trade_id"].append(str(k) if k != 5 else "")  # one bad row
        out["symbol"].append(symbol)
        out["side"].append(rng.choice(["buy", "sell", "BUY"]))
        out["price"].append(rng.choice(["100.5", "100.50", "101"]))
        out["amount"].append(rng.choice(["1", "0.25", "2.000"]))
        fee, currency = rng.choice([("0", ""), ("-0.01", "USDT"), ("0.001", "usdt")])
        out["fee"].append(fee)
        out["fee_currency"].append(currency)
        out["liquidity"].append(rng.choice(["maker", "taker", ""]))
        out["order_id"].append(rng.choice(["", "o1", "o2", str(rng.randrange(50))]))
    return out


def staged(batch: Any) -> list[tuple[Any, ...]]:
    """Each staged trade with its kind spelled out."""
    flat = [value for group in batch.groups for value in group]
    trades = [tuple(flat[k : k + 5]) for k in range(0, len(flat), 5)] + [
        tuple(t) for t in batch.tail
    ]
    return [(tid, tuple(batch.kinds[kind]), qty, price, ts) for tid, kind, qty, price, ts in trades]


def test_kinds_from_validation_codes_equal_kinds_from_the_values() -> None:
    for seed in range(4):
        validated = validate_values(columns(seed), now=NOW)
        assert validated.bad and validated.codes
        with_codes = trade_batch(validated)
        without = trade_batch(replace(validated, codes={}))
        assert with_codes.count == without.count == len(validated) - len(validated.bad)
        assert staged(with_codes) == staged(without)
        assert with_codes.parts == without.parts
