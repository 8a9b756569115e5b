"""Shared fixtures: an isolated stagectl home and a CLI runner that goes through main()."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from typer.testing import CliRunner

from stagectl.cli.main import main

# Property tests judge results, never time: hypothesis's default 200 ms deadline per
# example is a timed assertion that fails on a loaded CI machine.
settings.register_profile("stagectl", deadline=None)
settings.load_profile("stagectl")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
TEST_HMAC_KEY = "test-signing-key-0123456789abcdef"


@dataclass
class CliResult:
    """What one stagectl invocation printed and returned."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


Run = Callable[..., CliResult]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty stagectl home; STAGECTL_HOME points at it, no key, no colour."""
    root = tmp_path / "home"
    root.mkdir()
    isolate_home(root, monkeypatch)
    yield root


def isolate_home(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``root`` the stagectl home and the working directory, with no key, no
    state override, no notification credentials and no colour."""
    monkeypatch.setenv("STAGECTL_HOME", str(root))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    for name in (
        "STAGECTL_HMAC_KEY",
        "STAGECTL_HMAC_KEY_FILE",
        "STAGECTL_STATE",
        "STAGECTL_DEBUG",
        "FUTURES_TELEGRAM_BOT_TOKEN",
        "FUTURES_TELEGRAM_CHAT_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(root)


def invoke_cli(
    args: Sequence[Any], *, input: str | None = None, env: dict[str, str | None] | None = None
) -> CliResult:
    """Invoke stagectl in-process through main(), as the console script does."""
    runner = CliRunner()
    with runner.isolation(input=input, env=env) as (out, err, _):
        code = main([str(a) for a in args])
        stdout = out.getvalue().decode()
        stderr = err.getvalue().decode()
    return CliResult(code, stdout, stderr)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """One throwaway PostgreSQL 15 server for the session (tests/pg.py); skipped, with the
    reason, only when the server binaries or psycopg are absent."""
    from tests.pg import PgServer, missing_reason

    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The state database of a test that runs on both backends: a SQLite file, or a fresh
    database on the session's PostgreSQL server (both as ``--state`` takes them)."""
    from stagectl.config.state_url import parse_state_location

    if request.param == "sqlite":
        return tmp_path / "state" / "stagectl.db"
    server = request.getfixturevalue("pg_server")
    return parse_state_location(server.new_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def home_on_both(
    request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Run a test of the ``home`` fixture on either backend: for ``postgresql``,
    ``STAGECTL_STATE`` names a fresh database on the session's server, as an operator's
    environment would (read the state back with :func:`home_state`)."""
    if request.param == "postgresql":
        monkeypatch.setenv("STAGECTL_STATE", request.getfixturevalue("pg_server").new_database())
    return str(request.param)


def resolved_home(home: Path) -> Any:
    """``Home`` as the CLI resolves it for ``home``: its state ``STAGECTL_STATE`` when set."""
    from stagectl.config.home import Home
    from stagectl.config.state_url import parse_state_location

    override = os.environ.get("STAGECTL_STATE")
    return Home.resolve(home, parse_state_location(override) if override else None)


def home_state(home: Path) -> Any:
    """The state the CLI uses for ``home``: ``STAGECTL_STATE`` when set, else the home's."""
    return resolved_home(home).state_path


@pytest.fixture
def run(home: Path) -> Run:
    """Invoke stagectl in-process through main(), in the isolated ``home``."""
    return invoke_cli


@pytest.fixture
def hmac_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A signing key in the environment."""
    monkeypatch.setenv("STAGECTL_HMAC_KEY", TEST_HMAC_KEY)
    return TEST_HMAC_KEY


def skip_when_ignored(signum: signal.Signals) -> None:
    """Skip a test that sends ``signum`` when this session ignores it: a child started
    with the signal ignored keeps ignoring it (``nohup``, a background job of a
    non-interactive shell), and stagectl does too, as it should."""
    if signal.getsignal(signum) == signal.SIG_IGN:
        pytest.skip(f"{signum.name} is ignored in this session, so in stagectl too (as it should)")
