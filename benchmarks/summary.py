"""One machine-readable line at the end of a benchmark's output, for ``run_all.py``.

A benchmark given ``--summary-json`` ends with one line ``summary-json: [...]``: a JSON
list of rows, each a figure with its unit, the floor measured in the same run (or null),
their ratio, the target as text and whether it was met (null when there is no target).
The human-readable lines before it are unchanged.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

PREFIX = "summary-json: "


@dataclass(frozen=True)
class Row:
    name: str
    figure: float
    unit: str
    floor: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--summary-json",
        action="store_true",
        help="end with one 'summary-json: [...]' line (figure, floor, ratio, target, met)",
    )


def emit(rows: Sequence[Row]) -> None:
    print(PREFIX + json.dumps([asdict(row) for row in rows]), flush=True)


def parse(output: str) -> list[Row] | None:
    """The rows of the last summary line in ``output``; None when there is none."""
    lines = [line for line in output.splitlines() if line.startswith(PREFIX)]
    if not lines:
        return None
    return [Row(**row) for row in json.loads(lines[-1][len(PREFIX) :])]
