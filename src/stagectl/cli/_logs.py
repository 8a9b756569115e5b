"""The JSON-line log of run-live and the scheduled commands (docs/operations.md, "Logs").

Each command writes its own file, ``HOME/logs/<command>[-<mode>].jsonl``
(``risk-guard-live.jsonl``, ``risk-guard-weekly-live.jsonl``, ``run-live-paper.jsonl``,
``verify-thresholds.jsonl``, ...), rotated by size with the standard library's
``RotatingFileHandler``: ``STAGECTL_LOG_MAX_BYTES`` (default 10 MB) and
``STAGECTL_LOG_BACKUPS`` (default 5 old files). One file per command and mode because
that handler's rotation is safe within one process only: a long-running run-live and
the hourly guard rotating one shared file would rename each other's files.

A line is one JSON object: ``time`` (ISO-8601 UTC with milliseconds and ``Z``),
``level``, ``command``, ``run`` (the run it concerns, or null), ``event`` and
``fields``. Every string in it is masked (``notify._secrets``): the values of the
environment's secret-looking variables (TOKEN, SECRET, API_KEY, WEBHOOK, ...) become
``***``, and every URL keeps only its scheme and, for http(s), its host: a webhook's
token is masked even when only the config holds it (a config error quotes the value).

The log is written only when ``HOME/logs/`` exists (``stagectl init`` creates it), so a
command run in some other directory leaves nothing behind. A log that cannot be written
(a read-only ``logs/``, a full disk) is said once on stderr and never changes the
command's exit code: logging never raises into the command. The standard library's
``logging`` is imported with the first line written (``cli._log_file``), not with the
command's module: ``--help`` stays off it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stagectl.config.home import Home

MAX_BYTES_ENV = "STAGECTL_LOG_MAX_BYTES"
BACKUPS_ENV = "STAGECTL_LOG_BACKUPS"
DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_BACKUPS = 5
INFO, WARNING, ERROR = 20, 30, 40
"""The levels of ``logging``, without importing it."""


def log_path(home: Home, command: str, mode: str | None = None) -> Path:
    """``HOME/logs/<command>[-<mode>].jsonl``; ``risk-guard --weekly`` in live mode ->
    ``risk-guard-weekly-live.jsonl``."""
    parts = [part.lstrip("-") for part in command.split()] + ([mode] if mode else [])
    return home.logs_dir / f"{'-'.join(parts)}.jsonl"


class CommandLog:
    """One command's JSON-line log. ``run`` is put on every line once it is known."""

    def __init__(
        self,
        home: Home,
        command: str,
        mode: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.command = command
        self.run: str | None = None
        self.path = log_path(home, command, mode)
        self._env = os.environ if env is None else env
        self._logger: Any = None
        self._broken = False

    def event(self, event: str, level: int = INFO, **fields: Any) -> None:
        """Write one line; never raises (a failure is said once on stderr)."""
        if self._broken:
            return
        try:
            logger = self._open()
            if logger is not None:
                logger.log(level, event, extra={"stagectl": (self.command, self.run, fields)})
        except Exception as failure:
            self._fail(failure)

    def close(self) -> None:
        if self._logger is not None:
            for handler in self._logger.handlers:
                handler.close()
            self._logger.handlers.clear()

    def _open(self) -> Any:
        if self._logger is not None:
            return self._logger
        if not self.path.parent.is_dir():
            self._broken = True
            return None
        from stagectl.cli._log_file import open_logger
        from stagectl.notify._secrets import env_secrets

        self._logger = open_logger(
            self.path,
            name=f"stagectl.{self.command}",
            max_bytes=_env_int(self._env, MAX_BYTES_ENV, DEFAULT_MAX_BYTES),
            backups=_env_int(self._env, BACKUPS_ENV, DEFAULT_BACKUPS),
            secrets=env_secrets(self._env),
            on_error=self._fail,
        )
        return self._logger

    def _fail(self, failure: BaseException) -> None:
        if self._broken:
            return
        self._broken = True
        from stagectl.cli._common import info

        reason = failure.strerror if isinstance(failure, OSError) else type(failure).__name__
        info(f"log {self.path} not written ({reason}); the command goes on")


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number >= 0 from the environment; anything else is the default."""
    text = env.get(name, "").strip()
    return int(text) if text.isdigit() and len(text) < 19 else default
