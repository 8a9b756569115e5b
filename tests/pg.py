"""A throwaway PostgreSQL 15 server for the tests that run on both state backends.

``PgServer.start()`` runs ``initdb`` into a temporary directory and ``pg_ctl start`` on
127.0.0.1 at a free port (its Unix socket in the data directory, trust authentication,
C collation, no fsync: the data is thrown away). ``initdb`` refuses to run as root, so
under uid 0 the binaries run as the ``postgres`` user, owner of the data directory. Each
test gets a database of its own (:meth:`PgServer.new_database`); the session stops the
server and deletes the directory at the end.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


def _pg_bin() -> Path:
    """``STAGECTL_TEST_PG_BIN``, else PostgreSQL 15's Debian directory, else the newest."""
    if os.environ.get("STAGECTL_TEST_PG_BIN"):
        return Path(os.environ["STAGECTL_TEST_PG_BIN"])
    wanted = Path("/usr/lib/postgresql/15/bin")
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts)
    return wanted if wanted.is_dir() or not found else found[-1].parent


PG_BIN = _pg_bin()
_counter = itertools.count(1)


def missing_reason() -> str | None:
    """Why no server can be started here (None: it can)."""
    if not (PG_BIN / "initdb").is_file() or not (PG_BIN / "pg_ctl").is_file():
        return f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run initdb as"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    root: Path
    port: int
    _as_postgres: bool = field(default=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    @classmethod
    def start(cls, *, durable: bool = False) -> PgServer:
        """Start a server; ``durable`` keeps PostgreSQL's default fsync and synchronous
        commit (``benchmarks/pg_concurrency.py``), the tests turn them off."""
        root = Path(tempfile.mkdtemp(prefix="stagectl-pg-"))
        server = cls(root=root, port=_free_port(), _as_postgres=os.geteuid() == 0)
        if server._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(root, entry.pw_uid, entry.pw_gid)
        server._run(
            "initdb", "-D", str(server.data_dir), "-U", "postgres", "--auth=trust",
            "--locale=C", "--encoding=UTF8", "--no-sync",
        )  # fmt: skip
        options = (
            f"-p {server.port} -k {server.data_dir} -c listen_addresses=127.0.0.1"
            " -c max_connections=200"
        )
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        server._run(
            "pg_ctl", "start", "-w", "-D", str(server.data_dir), "-o", options,
            "-l", str(server.root / "server.log"),
        )  # fmt: skip
        return server

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database's URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "stop", "-m", "immediate", "-D", str(self.data_dir))
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
