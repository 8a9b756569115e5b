"""The runbooks as a user runs them: the installed ``stagectl`` in a subprocess, a
fresh home, a minimal environment (no ``--state``, no ``--now``, no SQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

STAGECTL = Path(sys.executable).parent / "stagectl"
SIGNER = "Ada Lovelace"


@dataclass(frozen=True)
class Step:
    """One command of a runbook and what it answered."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"$ stagectl {' '.join(self.args)} -> {self.exit_code}\n{self.stderr}"


class Operator(Protocol):
    home: Path
    env: dict[str, str]

    def __call__(self, *args: str | Path, expect: int | None = 0) -> Step: ...


@dataclass
class _Shell:
    home: Path
    env: dict[str, str]
    cwd: Path

    def __call__(self, *args: str | Path, expect: int | None = 0) -> Step:
        argv = tuple(str(a) for a in args)
        done = subprocess.run(
            [str(STAGECTL), *argv],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        step = Step(argv, done.returncode, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, step
        if expect is not None:
            assert step.exit_code == expect, step
        return step


@pytest.fixture
def operator(tmp_path: Path) -> Operator:
    """A shell in a fresh home with the signing key, as docs/operations.md sets it up."""
    if not STAGECTL.is_file():
        pytest.skip(f"stagectl is not installed beside {sys.executable}")
    home = tmp_path / "desk"
    env = {
        "PATH": f"{STAGECTL.parent}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path),
        "STAGECTL_HOME": str(home),
        "STAGECTL_HMAC_KEY": "e2e-signing-key-0123456789abcdef",
        "NO_COLOR": "1",
        "COLUMNS": "120",
        "LANG": "C.UTF-8",
    }
    shell = _Shell(home, env, cwd=tmp_path)
    shell("init", home)
    shell.cwd = home  # then work in the home, as docs/operations.md does
    return shell
