"""The register of published reports: what was written, where, and whether it was signed."""

from __future__ import annotations

from dataclasses import dataclass

from stagectl.state.db import StateDB


@dataclass(frozen=True)
class ReportRecord:
    id: int
    kind: str
    path: str | None
    sha256: str
    key_id: str | None
    signed: bool
    generated_at: str


def record_report(
    db: StateDB,
    *,
    kind: str,
    path: str | None,
    sha256: str,
    key_id: str | None,
    signed: bool,
    generated_at: str,
) -> int:
    """Record one published report; returns its id.

    ``generated_at`` is the envelope's own string, kept verbatim so the
    register and the signed file agree byte for byte.
    """
    with db.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO reports (kind, path, sha256, key_id, signed, generated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (kind, path, sha256, key_id, int(signed), generated_at),
        )
    if cursor.lastrowid is None:
        raise RuntimeError("SQLite returned no row id for an insert")
    return cursor.lastrowid


def list_reports(db: StateDB, *, kind: str | None = None, limit: int = 100) -> list[ReportRecord]:
    """The most recently recorded reports first."""
    sql = "SELECT id, kind, path, sha256, key_id, signed, generated_at FROM reports"
    params: list[object] = []
    if kind is not None:
        sql += " WHERE kind = ?"
        params.append(kind)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    return [
        ReportRecord(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])
        for row in db.conn.execute(sql, params)
    ]
