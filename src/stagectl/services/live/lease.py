"""One driver per run: the run-live process that drives a run holds its lease.

The lease (``state.leases``) lasts ``STAGECTL_RUN_LEASE_S`` seconds (default 60) and a
heartbeat thread renews it every third of that, on a connection of its own, so a loop that
waits an hour for its next bar keeps it. A second run-live for the same run (another host
sharing a PostgreSQL state, or the same host) refuses while the lease is live (exit 3,
naming the holder and when it expires) and takes the run over once it has expired. On
the same host a lease whose process is gone (SIGKILL, a crash) is taken over at once: a
restart need not wait. A driver whose lease was taken over (it stalled past the expiry)
stops at its next check without recording the run's end.

Fencing: every write transaction of the driver's connection first reads the lease, under
the state's one write lock (``StateDB.fence``), and writes nothing when the lease is no
longer its own. A takeover is a write transaction too, so it commits either before the
check (the bar is refused, exit 3) or after the bar's commit: a driver that paused past
its expiry (a stopped VM, a long GC, a suspended laptop) and lost the run cannot write
the bar it was in, even before its heartbeat notices.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from stagectl.config.state_url import StateLocation
from stagectl.errors import ExternalError, InputError
from stagectl.state.db import Connection, DatabaseError, StateDB, open_state
from stagectl.state.leases import (
    Lease,
    LeaseHeld,
    acquire_lease,
    lease_holder,
    release_lease,
    renew_lease,
)

LEASE_ENV = "STAGECTL_RUN_LEASE_S"
DEFAULT_LEASE_S = 60.0


def lease_length() -> timedelta:
    """``STAGECTL_RUN_LEASE_S`` or the default (60 s)."""
    raw = os.environ.get(LEASE_ENV, "").strip()
    if not raw:
        return timedelta(seconds=DEFAULT_LEASE_S)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 1 <= seconds <= 86_400:
        raise InputError(f"must be seconds from 1 to 86400, got {raw!r}", where=LEASE_ENV)
    return timedelta(seconds=seconds)


def _gone(lease: Lease) -> bool:
    """Whether the lease's process is known to be gone: it ran on this host and its pid
    no longer exists."""
    if lease.host != socket.gethostname():
        return False
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass
class RunLease:
    """This process's lease on a run, renewed in the background until released."""

    location: StateLocation
    run_id: str
    holder: str
    length: timedelta
    clock: Callable[[], datetime]
    _lost: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def take(
        cls, db: StateDB, location: StateLocation, run_id: str, clock: Callable[[], datetime]
    ) -> RunLease:
        """Take the run's lease (ExternalError, exit 3, while another driver holds it), fence
        ``db``'s write transactions with it and start the heartbeat."""
        host, pid = socket.gethostname(), os.getpid()
        lease = cls(location, run_id, f"{host}:{pid}:{secrets.token_hex(4)}", lease_length(), clock)
        try:
            acquire_lease(
                db, run_id, holder=lease.holder, host=host, pid=pid, now=clock(),
                ttl=lease.length, abandoned=_gone,
            )  # fmt: skip
        except LeaseHeld as held:
            raise held_error(held.lease) from None
        db.fence = lease.check
        lease._thread = threading.Thread(
            target=lease._heartbeat, name=f"lease {run_id}", daemon=True
        )
        lease._thread.start()
        return lease

    @property
    def lost(self) -> bool:
        """True once a renewal found the lease taken over by another driver."""
        return self._lost.is_set()

    def check(self, conn: Connection) -> None:
        """The fence: raise :meth:`lost_error` (and mark the lease lost) unless the run's
        lease is still this process's. Runs inside the write transaction, under its lock."""
        if lease_holder(conn, self.run_id) != self.holder:
            self._lost.set()
            raise self.lost_error()

    def lost_error(self) -> ExternalError:
        return ExternalError(
            f"run {self.run_id}: another run-live took the run over after this one's lease "
            "expired; stopped without recording more",
            where="run-live",
        )

    def _heartbeat(self) -> None:
        interval = self.length.total_seconds() / 3
        try:
            db = open_state(self.location, migrate=False)
        except Exception:
            return
        with db:
            while not self._done.wait(interval):
                try:
                    kept = renew_lease(
                        db, self.run_id, holder=self.holder, now=self.clock(), ttl=self.length
                    )
                except (DatabaseError, ExternalError):
                    continue  # locked or unreachable now: the next beat tries again
                if not kept:
                    self._lost.set()
                    return

    def release(self, db: StateDB) -> None:
        """Stop the heartbeat, lift the fence and give the lease up (a lost one is not ours
        to delete)."""
        db.fence = None
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(DatabaseError):  # not released: it expires on its own
            release_lease(db, self.run_id, holder=self.holder)


def held_error(lease: Lease) -> ExternalError:
    return ExternalError(
        f"run {lease.run_id} is driven by another run-live ({lease.host}, pid {lease.pid}) "
        f"whose lease runs until {lease.expires_at.isoformat().replace('+00:00', 'Z')}; "
        "stop that process, or start this one again after the lease expires "
        "(it takes the run over then)",
        where="run-live",
    )
