"""The JSON-line log of run-live and the scheduled commands (docs/operations.md, "Logs").

Each command writes its own file, ``HOME/logs/<command>.jsonl`` (``risk-guard.jsonl``,
``risk-guard-weekly.jsonl``, ``run-live.jsonl``, ...), rotated by size with the standard
library's ``RotatingFileHandler``: ``STAGECTL_LOG_MAX_BYTES`` (default 10 MB) and
``STAGECTL_LOG_BACKUPS`` (default 5 old files). One file per command because that
handler's rotation is safe within one process only: a long-running run-live and the
hourly guard rotating one shared file would rename each other's files.

A line is one JSON object: ``time`` (ISO-8601 UTC with milliseconds and ``Z``),
``level``, ``command``, ``run`` (the run it concerns, or null), ``event`` and
``fields``. Every string in it is masked (``notify._secrets``): the values of the
environment's secret-looking variables (TOKEN, SECRET, API_KEY, WEBHOOK, ...) become
``***``, and every URL keeps only its scheme and, for http(s), its host: a webhook's
token is masked even when only the config holds it (a config error quotes the value).

The log is written only when ``HOME/logs/`` exists (``stagectl init`` creates it), so a
command run in some other directory leaves nothing behind. A log that cannot be written
(a read-only ``logs/``, a full disk) is said once on stderr and never changes the
command's exit code: logging never raises into the command.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.domain.jsonable import to_jsonable

MAX_BYTES_ENV = "STAGECTL_LOG_MAX_BYTES"
BACKUPS_ENV = "STAGECTL_LOG_BACKUPS"
DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_BACKUPS = 5


def log_path(home: Home, command: str) -> Path:
    """``HOME/logs/<command>.jsonl``; ``risk-guard --weekly`` -> ``risk-guard-weekly``."""
    name = "-".join(part.lstrip("-") for part in command.split())
    return home.logs_dir / f"{name}.jsonl"


class CommandLog:
    """One command's JSON-line log. ``run`` is put on every line once it is known."""

    def __init__(self, home: Home, command: str, env: Mapping[str, str] | None = None) -> None:
        self.command = command
        self.run: str | None = None
        self.path = log_path(home, command)
        self._env = os.environ if env is None else env
        self._logger: logging.Logger | None = None
        self._broken = False

    def event(self, event: str, level: int = logging.INFO, **fields: Any) -> None:
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

    def _open(self) -> logging.Logger | None:
        if self._logger is not None:
            return self._logger
        if not self.path.parent.is_dir():
            self._broken = True
            return None
        from stagectl.notify._secrets import env_secrets

        handler = _Handler(
            self.path,
            maxBytes=_env_int(self._env, MAX_BYTES_ENV, DEFAULT_MAX_BYTES),
            backupCount=_env_int(self._env, BACKUPS_ENV, DEFAULT_BACKUPS),
            encoding="utf-8",
            delay=True,
        )
        handler.on_error = self._fail
        handler.setFormatter(JsonLineFormatter(env_secrets(self._env)))
        # A logger of its own, outside logging's registry: nothing else (a library's
        # root handlers, another command run in the same process) sees or adds to it.
        logger = logging.Logger(f"stagectl.{self.command}", logging.DEBUG)
        logger.propagate = False
        logger.addHandler(handler)
        self._logger = logger
        return logger

    def _fail(self, failure: BaseException) -> None:
        if self._broken:
            return
        self._broken = True
        from stagectl.cli._common import info

        reason = failure.strerror if isinstance(failure, OSError) else type(failure).__name__
        info(f"log {self.path} not written ({reason}); the command goes on")


class _Handler(logging.handlers.RotatingFileHandler):
    """Reports a failed write through ``on_error`` instead of printing a traceback."""

    on_error: Any = None

    def handleError(self, record: logging.LogRecord) -> None:
        import sys

        failure = sys.exc_info()[1]
        if self.on_error is not None and failure is not None:
            self.on_error(failure)


class JsonLineFormatter(logging.Formatter):
    """A record as one JSON line, every string masked."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        from stagectl.notify._secrets import mask_text, mask_urls

        command, run, fields = getattr(record, "stagectl", (record.name, None, {}))
        line = {
            "time": _iso_ms(record.created),
            "level": record.levelname,
            "command": command,
            "run": run,
            "event": record.getMessage(),
            "fields": to_jsonable(fields),
        }

        def masked(value: Any) -> Any:
            if isinstance(value, str):
                return mask_urls(mask_text(value, self.secrets))
            if isinstance(value, dict):
                return {key: masked(item) for key, item in value.items()}
            if isinstance(value, list):
                return [masked(item) for item in value]
            return value

        return json.dumps(masked(line), separators=(",", ":"), allow_nan=False, default=str)


def _iso_ms(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number >= 0 from the environment; anything else is the default."""
    text = env.get(name, "").strip()
    return int(text) if text.isdigit() and len(text) < 19 else default
