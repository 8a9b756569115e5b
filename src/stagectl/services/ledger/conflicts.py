"""How ``metrics import`` and ``metrics fetch`` report a conflicting trade: one line naming
the trade's two records (``FILE:LINE`` for a row of the input, the import or run for a
fill already in the ledger) and the values they disagree on (docs/ledger.md, "One trade,
one fill")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stagectl.data.trade_values import shown
from stagectl.errors import InputError

if TYPE_CHECKING:
    from stagectl.state.fill_conflicts import FillConflict, StoredFill


@dataclass(frozen=True)
class RowNames:
    """How an import's errors name the rows of its input: ``row(n)`` (``FILE:LINE``, or
    ``binanceusdm trade 3``), and ``first(symbol, trade_id)``: the row of a trade's first
    good record, looked up (the file read again) only when a conflict needs it."""

    row: Callable[[int], str]
    first: Callable[[str, str], int | None]


class Conflicting(Exception):
    """A conflict met while merging, the import already discarded: the trade's row in
    this input, and whether the recorded copy came from this same import."""

    def __init__(self, conflict: FillConflict, row: int, own: bool) -> None:
        super().__init__(str(conflict))
        self.conflict = conflict
        self.row = row
        self.own = own


def conflict_error(found: Conflicting, names: RowNames) -> InputError:
    """One line naming both records of the trade and the values they disagree on."""
    from stagectl.domain.fill_identity import FILE_FIELD_NAMES

    conflict = found.conflict
    if found.own:
        first = names.first(conflict.symbol, conflict.trade_id)
        theirs = names.row(first) if first is not None else "an earlier row"
        theirs += " of the same input"
    else:
        theirs = _stored_text(conflict.stored, f"{conflict.symbol}:{conflict.trade_id}")
    differences = ", ".join(
        f"{FILE_FIELD_NAMES.get(name, name)} {_value_text(new)} vs {_value_text(old)}"
        for name, new, old in conflict.differences
    )
    return InputError(
        f"trade_id: trade {shown(conflict.trade_id, plain=True)} on {conflict.symbol} conflicts"
        f" with {theirs} ({differences}); nothing was imported: one trade id is one fill",
        where=names.row(found.row),
    )


def _stored_text(stored: StoredFill, key: str) -> str:
    """Where the ledger's copy of a trade came from, for an error line."""
    if stored.import_origin is not None:
        sha = (stored.import_sha256 or "")[:12]
        origin = shown(stored.import_origin, limit=_ORIGIN_CHARS, plain=True)
        where = f"import {origin} (sha256 {sha}...)"
    elif stored.run_id is not None:
        where = f"{stored.source} run {shown(stored.run_id, plain=True)}"
    else:
        where = f"source {shown(stored.source, plain=True)}"
    return f"the fill already in the ledger from {where}, trade {shown(key, plain=True)}"


_ORIGIN_CHARS = 300  # a file path in an error line


def _value_text(value: str | None) -> str:
    return "(none)" if value is None else shown(value, plain=True)
