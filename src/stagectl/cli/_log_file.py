"""The file side of ``cli._logs``: a size-rotated file of JSON lines, every string masked.

Imported only when a command writes its first log line.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stagectl.domain.jsonable import to_jsonable
from stagectl.notify._secrets import mask_text, mask_urls


def open_logger(
    path: Path,
    *,
    name: str,
    max_bytes: int,
    backups: int,
    secrets: list[str],
    on_error: Callable[[BaseException], None],
) -> logging.Logger:
    """A logger writing ``path`` (rotated at ``max_bytes``, ``backups`` old files kept)."""
    handler = _Handler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True)
    handler.on_error = on_error
    handler.setFormatter(JsonLineFormatter(secrets))
    # A logger of its own, outside logging's registry: nothing else (a library's root
    # handlers, another command run in the same process) sees or adds to it.
    logger = logging.Logger(name, logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    return logger


class _Handler(logging.handlers.RotatingFileHandler):
    """Reports a failed write through ``on_error`` instead of printing a traceback."""

    on_error: Callable[[BaseException], None] | None = None

    def handleError(self, record: logging.LogRecord) -> None:
        failure = sys.exc_info()[1]
        if self.on_error is not None and failure is not None:
            self.on_error(failure)


class JsonLineFormatter(logging.Formatter):
    """A record as one JSON line, every string masked."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        command, run, fields = getattr(record, "stagectl", (record.name, None, {}))
        line = {
            "time": _iso_ms(record.created),
            "level": record.levelname,
            "command": command,
            "run": run,
            "event": record.getMessage(),
            "fields": to_jsonable(fields),
        }
        return json.dumps(self._masked(line), separators=(",", ":"), allow_nan=False)

    def _masked(self, value: Any) -> Any:
        if isinstance(value, str):
            return mask_urls(mask_text(value, self.secrets))
        if isinstance(value, dict):
            return {key: self._masked(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._masked(item) for item in value]
        return value


def _iso_ms(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
