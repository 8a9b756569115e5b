"""A broker stub that notices every venue call made while the state DB holds a write lock."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

BROKER_CALLS = frozenset(
    {
        "server_time",
        "balances",
        "equity",
        "positions",
        "marks",
        "open_orders",
        "place",
        "fetch_order",
        "cancel",
        "cancel_all",
        "fills_since",
        "funding_since",
    }
)


class WriteLockProbe:
    """Asks, from a connection of its own, whether anyone holds the database's write lock."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def held(self) -> bool:
        if not self.path.exists():
            return False
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                return True
            raise
        finally:
            conn.close()


class GuardedBroker:
    """Delegates to ``inner``; records each Broker call made while a write lock is held."""

    def __init__(self, inner: Any, probe: WriteLockProbe) -> None:
        self._inner = inner
        self._probe = probe
        self.calls: list[str] = []
        self.inside_a_transaction: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in BROKER_CALLS:
            return attr

        def checked(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if self._probe.held():
                self.inside_a_transaction.append(name)
            return attr(*args, **kwargs)

        return checked
