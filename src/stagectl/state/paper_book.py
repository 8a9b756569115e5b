"""The paper broker's book (migration 0005_paper_book).

The paper broker is the "exchange" of a paper run: its own view of cash, positions,
open orders, fills and funding, kept apart from the client-side tables (``orders``,
``fills``, ``positions``, ``funding_payments``) that run-live writes from what the
broker reports, so reconciling the two is a real check. The book is one JSON document
per account (``paper_books``); orders, fills and funding are ``paper_records`` keyed
by (account, kind, record id), replaced on update. Amounts inside are Decimal text.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from stagectl.state._codec import json_text, parse_json, ts_text
from stagectl.state.db import StateDB

PaperRecord = tuple[str, str, str, datetime, dict[str, Any]]


class StatePaperStore:
    """``exchange.paper.PaperStore`` over the state database, for one account."""

    def __init__(self, db: StateDB, account: str = "paper") -> None:
        self.db = db
        self.account = account

    def load_book(self) -> dict[str, Any] | None:
        row = self.db.conn.execute(
            "SELECT book_json FROM paper_books WHERE account = ?", (self.account,)
        ).fetchone()
        return None if row is None else dict(parse_json(row[0]))

    def get_record(self, kind: str, record_id: str) -> dict[str, Any] | None:
        row = self.db.conn.execute(
            "SELECT body_json FROM paper_records WHERE account = ? AND kind = ? AND record_id = ?",
            (self.account, kind, record_id),
        ).fetchone()
        return None if row is None else dict(parse_json(row[0]))

    def records_since(
        self, kind: str, since: datetime, symbol: str | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT body_json FROM paper_records WHERE account = ? AND kind = ? AND ts >= ?"
        params: list[Any] = [self.account, kind, ts_text(since)]
        if symbol is not None:
            sql += " AND symbol = ?"
            params.append(symbol)
        sql += " ORDER BY ts, record_id"
        return [dict(parse_json(row[0])) for row in self.db.conn.execute(sql, params)]

    def commit(self, book: dict[str, Any], records: Iterable[PaperRecord], now: datetime) -> None:
        rows = [
            (self.account, kind, record_id, symbol, ts_text(ts), json_text(body))
            for kind, record_id, symbol, ts, body in records
        ]
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO paper_records (account, kind, record_id, symbol, ts, body_json)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account, kind, record_id)"
                " DO UPDATE SET body_json = excluded.body_json",
                rows,
            )
            conn.execute(
                "INSERT INTO paper_books (account, book_json, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (account) DO UPDATE SET book_json = excluded.book_json,"
                " updated_at = excluded.updated_at",
                (self.account, json_text(book), ts_text(now)),
            )
