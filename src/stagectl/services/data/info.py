"""`stagectl data info`: what market data is bundled with stagectl.

Entry: ``run(DataInfoRequest(), *, home) -> DataInfoResult``.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from stagectl.config.home import Home
from stagectl.data.bundled import SAMPLE_DIR, DatasetInfo, bundled_datasets


@dataclass(frozen=True)
class DataInfoRequest:
    """``data info`` takes no input: it always describes the bundled sample."""


@dataclass(frozen=True)
class DataInfoResult:
    """The bundled datasets, where they live and whether each file is intact."""

    sample_dir: str
    datasets: list[DatasetInfo]
    intact: list[bool]
    total_bytes: int

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for dataset, ok in zip(self.datasets, self.intact, strict=True):
            row = asdict(dataset)
            row["intact"] = ok
            rows.append(row)
        return {"sample_dir": self.sample_dir, "total_bytes": self.total_bytes, "datasets": rows}


def run(request: DataInfoRequest, *, home: Home) -> DataInfoResult:
    """Read the manifest and check every file's sha256 against it (the bundled sample
    belongs to the package, not to ``home``)."""
    datasets = bundled_datasets()
    intact, total = [], 0
    for dataset in datasets:
        try:
            data = dataset.path.read_bytes()
        except OSError:
            intact.append(False)
            continue
        total += len(data)
        intact.append(hashlib.sha256(data).hexdigest() == dataset.sha256)
    return DataInfoResult(str(SAMPLE_DIR), datasets, intact, total)
