"""The one report path: envelope -> sign -> atomic write -> record in state.

Every command that produces a report calls ``publish_report``. It stays light
(standard library, ``stagectl.reports`` and, only when a report is written,
the sqlite3-only ``stagectl.state.db``) because ``verify-thresholds`` is a fast
path.

Recording is best effort by design: the report file is the artifact and is
written first; the row in the state database's ``reports`` table is an index
of it. The database is never created or migrated from here (that would pull
in sqlite-utils and pandas, and would litter a ``state/`` directory into a CI
checkout that only wanted a report file). When there is no state database,
its schema is not current, it stays locked, or the state module is missing,
the report is still written and one warning line goes to stderr.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.config.state_url import state_exists
from stagectl.errors import SigningKeyError, StagectlError
from stagectl.reports import (
    NO_KEY_MESSAGE,
    build_envelope,
    load_signing_key,
    report_bytes,
    sign_envelope,
    write_atomic,
)


def publish_report(
    kind: str,
    body: dict[str, Any],
    *,
    inputs: list[Path],
    out: Path | None,
    unsigned: bool,
    home: Home,
    now: datetime,
) -> dict[str, Any]:
    """Build, sign, write and record one report; return its envelope.

    The envelope is signed whenever a key is configured. With ``out`` set and
    no key, ``unsigned`` must be true, else ``SigningKeyError`` (exit 2) says
    how to configure one. Without ``out`` nothing is written or recorded and
    the envelope (signed if a key exists) is returned for ``--json``.
    """
    envelope = build_envelope(kind, body, inputs=inputs, now=now)
    key = load_signing_key()
    if key is not None:
        envelope = sign_envelope(envelope, key)
    elif out is not None and not unsigned:
        raise SigningKeyError(NO_KEY_MESSAGE)
    if out is None:
        return envelope
    data = report_bytes(envelope)
    write_atomic(out, data)
    if key is None:
        _warn(f"{out} is an UNSIGNED report (--unsigned); 'stagectl report verify' rejects it")
    _record(
        home,
        kind=kind,
        path=str(out.resolve()),
        sha256=hashlib.sha256(data).hexdigest(),
        key_id=key.key_id if key is not None else None,
        generated_at=envelope["generated_at"],
    )
    return envelope


def _warn(message: str) -> None:
    sys.stderr.write(f"stagectl: warning: {message}\n")
    sys.stderr.flush()


def _record(
    home: Home, *, kind: str, path: str, sha256: str, key_id: str | None, generated_at: str
) -> None:
    """Add the written report to the state's reports table, or warn why not."""
    state_path = home.state_path
    not_recorded = f"report {path} was written but not recorded in state"
    if not state_exists(state_path):
        _warn(f"{not_recorded}: no state database at {state_path} (run 'stagectl init')")
        return
    try:
        from stagectl.state.db import DatabaseError, open_state
        from stagectl.state.reports import record_report
    except ImportError as error:
        _warn(f"{not_recorded}: state support is unavailable ({error})")
        return
    try:
        db = open_state(state_path, migrate=False)
        try:
            pending = db.pending_migrations()
            if pending:
                _warn(
                    f"{not_recorded}: the state schema is not current "
                    f"({len(pending)} pending migration(s); run 'stagectl init')"
                )
                return
            with db.transaction():
                record_report(
                    db,
                    kind=kind,
                    path=path,
                    sha256=sha256,
                    key_id=key_id,
                    signed=key_id is not None,
                    generated_at=generated_at,
                )
        finally:
            db.close()
    except (StagectlError, DatabaseError) as error:
        _warn(f"{not_recorded}: {error}")
