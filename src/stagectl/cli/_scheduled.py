"""Scheduled commands (cron's hourly guard, the weekly review) say when they could not
judge.

A scheduled command that exits 2 (bad config or input), 3 (state or data unreachable)
or 70 (a bug) has not judged the book at all, and nobody reads cron's log in time: the
command's body runs inside :func:`could_not_judge_alert`, which sends a "could not
judge" alert (the exit code and the error line, secrets masked) to the channels of the
risk guard config's ``notify`` section, then lets the error go on to ``main()`` as
before. Sending never raises and never changes the exit code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from stagectl.cli._common import info
from stagectl.cli._failure import failure_of
from stagectl.config.home import Home


@contextmanager
def could_not_judge_alert(home: Home, *, command: str, config: Path | None) -> Iterator[None]:
    """Run the block; when it fails with exit 2, 3 or 70, alert, then re-raise.
    ``config`` is the guard config whose ``notify`` section names the channels."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except Exception as error:
        code, line = failure_of(error)
        _tell(home, command, config, code, line)
        raise


def _tell(home: Home, command: str, config: Path | None, code: int, line: str) -> None:
    try:
        from stagectl.services.guard.alerts import COULD_NOT_JUDGE, could_not_judge

        if code not in COULD_NOT_JUDGE:
            return
        results = could_not_judge(home, config, command=command, exit_code=code, error=line)
        for result in results:
            if result.status == "sent":
                info(f"could-not-judge alert sent via {result.channel}")
            elif result.status == "failed":
                info(f"could-not-judge alert via {result.channel} failed: {result.error}")
    except Exception as failure:
        info(f"could-not-judge alert not sent ({type(failure).__name__})")
