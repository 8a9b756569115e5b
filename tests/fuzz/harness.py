"""One way to drive the CLI with hostile input and judge the outcome.

The fuzz suites generate bad configs, fill files, candle files and arguments
with hypothesis; every example runs stagectl in-process in a scratch home of
its own (function-scoped pytest fixtures are not reset between hypothesis
examples) and is judged by ``assert_clean_outcome``: an exit code in {0, 1, 2},
no traceback anywhere, and on bad input (exit 2) exactly one error line
(``stagectl: ...``; context lines such as ``config: ...`` may precede it) and
no file written that was not there before (state database files excepted:
opening the state creates it, which is not a half-written output; so is the
``<state>.import-lock`` beside it, which every import into the state takes).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner

from stagectl.cli.main import main
from tests.conftest import CliResult

ALLOWED_EXITS = frozenset({0, 1, 2})
_STATE_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".db.import-lock")
_ENV_CLEARED = (
    "STAGECTL_HMAC_KEY",
    "STAGECTL_HMAC_KEY_FILE",
    "STAGECTL_STATE",
    "STAGECTL_DEBUG",
    "FUTURES_TELEGRAM_BOT_TOKEN",
    "FUTURES_TELEGRAM_CHAT_ID",
)


@contextmanager
def scratch_home() -> Iterator[Path]:
    """A fresh, empty stagectl home for one generated example."""
    with tempfile.TemporaryDirectory(prefix="stagectl-fuzz-") as root:
        home = Path(root) / "home"
        home.mkdir()
        yield home


def invoke(home: Path, args: Sequence[str | os.PathLike[str]]) -> CliResult:
    """Run ``stagectl ARGS`` in-process with ``home`` as STAGECTL_HOME and cwd."""
    env: dict[str, str | None] = {name: None for name in _ENV_CLEARED}
    env.update({"STAGECTL_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "120"})
    runner = CliRunner()
    previous = Path.cwd()
    os.chdir(home)
    try:
        with runner.isolation(env=env) as (out, err, _):
            code = main([str(a) for a in args])
            stdout = out.getvalue().decode(errors="replace")
            stderr = err.getvalue().decode(errors="replace")
    finally:
        os.chdir(previous)
    return CliResult(code, stdout, stderr)


def snapshot(root: Path) -> frozenset[Path]:
    """Every file under ``root`` (the state database's files left out)."""
    return frozenset(
        path
        for path in root.rglob("*")
        if path.is_file() and not path.name.endswith(_STATE_SUFFIXES)
    )


def assert_clean_outcome(result: CliResult, home: Path, before: frozenset[Path]) -> None:
    """The CLI contract for hostile input (DESIGN.md): judged, never crashed."""
    shown = f"exit {result.exit_code}; stderr: {result.stderr!r}"
    assert result.exit_code in ALLOWED_EXITS, shown
    assert "Traceback" not in result.stderr + result.stdout, shown
    errors = [line for line in result.stderr.splitlines() if line.startswith("stagectl: ")]
    assert len(errors) <= 1, shown
    if result.exit_code == 2:
        assert len(errors) == 1, shown
        written = snapshot(home) - before
        assert not written, f"half-written on exit 2: {sorted(map(str, written))}; {shown}"
