"""How the guard tests compare the in-loop decisions with cron's: equal, floats to 1e-9."""

from __future__ import annotations

import math
from typing import Any

TOLERANCE = 1e-9


def same(a: Any, b: Any) -> bool:
    """Equal, floats to ``TOLERANCE`` (NaN with NaN), recursively."""
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOLERANCE
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
