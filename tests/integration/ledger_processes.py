"""Second processes for the ledger import tests: ``python -m tests.integration.ledger_processes``.

``writer STATE STOP REPORT``: a paper run's stand-in. It records one fill per loop through
``state.ledger.insert_fills`` (one short write transaction, with the busy timeout of
``STAGECTL_BUSY_TIMEOUT_MS``), counts the writes that found an import unfinished and the
ones that failed, creates ``REPORT.ready`` after its first write, and writes the counts to
REPORT as JSON once STOP exists.

``killed-import HOME FILE ACCOUNT STEPS``: ``metrics import`` of FILE that kills its own
process (SIGKILL) right after its STEPS-th merge transaction commits.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from stagectl.config.home import Home
from stagectl.config.state_url import StateLocation, parse_state_location
from stagectl.domain.types import Fill
from stagectl.errors import StagectlError
from stagectl.services.ledger import importer
from stagectl.state.db import open_state
from stagectl.state.ledger import insert_fills
from stagectl.state.ledger_imports import unfinished_imports
from stagectl.state.ledger_merge import MergeStep

WRITER_ACCOUNT = "paper-writer"
WRITER_SYMBOL = "SOLUSDT"
WRITER_T0 = datetime(2025, 6, 1, tzinfo=UTC)


def writer(state: StateLocation, stop: Path, report: Path) -> None:
    writes = while_importing = failures = 0
    with open_state(state) as db:
        while not stop.exists():
            importing = bool(unfinished_imports(db))
            fill = Fill(
                account=WRITER_ACCOUNT,
                trade_id=f"{WRITER_SYMBOL}:{writes}",
                symbol=WRITER_SYMBOL,
                side="buy" if writes % 2 else "sell",
                qty=Decimal("0.5"),
                price=Decimal("150.25"),
                fee=Decimal("0.001"),
                fee_currency="USDT",
                ts=WRITER_T0 + timedelta(seconds=writes),
                source="paper",
            )
            try:
                insert_fills(db, [fill])
            except StagectlError:
                failures += 1
            writes += 1
            while_importing += importing
            if writes == 1:
                report.with_name(report.name + ".ready").touch()
            time.sleep(0.005)
    document = {"writes": writes, "while_importing": while_importing, "failures": failures}
    report.write_text(json.dumps(document))


def killed_import(home: Path, path: Path, account: str, steps: int) -> None:
    merged = 0

    def after(step: MergeStep) -> None:
        nonlocal merged
        merged += 1
        if merged == steps:
            os.kill(os.getpid(), signal.SIGKILL)

    request = importer.ImportRequest(path=path, account=account)
    override = os.environ.get("STAGECTL_STATE")  # the PostgreSQL runs of the tests
    state = parse_state_location(override) if override else None
    importer.run(request, home=Home.resolve(home, state), after_merge=after)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "writer":
        writer(parse_state_location(args[0]), Path(args[1]), Path(args[2]))
    elif command == "killed-import":
        killed_import(Path(args[0]), Path(args[1]), args[2], int(args[3]))
    else:
        raise SystemExit(f"unknown command {command!r}")
