"""Market data and trade files: the bundled sample, CSV loaders and their validation
(docs/data.md), and the fill files ``metrics import`` reads (``trade_files``,
``trade_validation``; docs/ledger.md).

``bundled_datasets`` needs only the standard library; the loaders import pandas,
so they are resolved lazily to keep ``import stagectl.data`` cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stagectl.data.bundled import SAMPLE_DIR, DatasetInfo, bundled_datasets

if TYPE_CHECKING:
    from stagectl.data.loaders import load_candles, load_funding

__all__ = ["SAMPLE_DIR", "DatasetInfo", "bundled_datasets", "load_candles", "load_funding"]


def __getattr__(name: str) -> Any:
    if name in ("load_candles", "load_funding"):
        from stagectl.data import loaders

        return getattr(loaders, name)
    raise AttributeError(f"module 'stagectl.data' has no attribute {name!r}")
