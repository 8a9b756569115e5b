"""The market-data sample shipped inside the package (stdlib only).

``sample/MANIFEST.json`` is written by ``scripts/build_sample_data.py``; reading it
needs no pandas, so ``stagectl data info`` stays light.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from stagectl.errors import InternalError

SAMPLE_DIR = Path(__file__).resolve().with_name("sample")
MANIFEST = SAMPLE_DIR / "MANIFEST.json"


@dataclass(frozen=True)
class DatasetInfo:
    """One bundled file: what it holds and how to check it is intact."""

    file: str
    symbol: str
    market: str
    kind: str
    timeframe: str
    first: str
    last: str
    rows: int
    gaps: int
    missing_bars: int
    sha256: str
    csv_sha256: str
    source: str

    @property
    def path(self) -> Path:
        return SAMPLE_DIR / self.file


def bundled_datasets() -> list[DatasetInfo]:
    """Every bundled dataset, in manifest order (perp candles, funding, spot candles)."""
    try:
        manifest = json.loads(MANIFEST.read_text("utf-8"))
        return [DatasetInfo(**entry) for entry in manifest["datasets"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InternalError(f"the bundled data manifest is unreadable: {error}") from error
