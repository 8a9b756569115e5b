"""Files that hold a secret and must be readable by their owner only (mode 0600 or
stricter): the notification URL and bot token files, the state's password file.

Standard library only: ``config.state_url`` imports this, and every command imports it.
"""

from __future__ import annotations

import stat
from pathlib import Path


class UnsafeFile(Exception):
    """An owner-only file that is not (readable by others) or cannot be read.

    ``mode`` holds the permission bits of a file readable by others (None when the file
    could not be read); ``reason`` says why it could not be read (None when it could)."""

    def __init__(
        self, message: str, *, path: Path, mode: int | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.mode = mode
        self.reason = reason


def read_owner_only(path: Path) -> str:
    """The text of a file readable by its owner only; UnsafeFile saying why not."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise UnsafeFile(f"cannot read {path} ({reason})", path=path, reason=reason) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UnsafeFile(
            f"{path} is readable by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"run chmod 600 on it",
            path=path,
            mode=stat.S_IMODE(mode),
        )
    return text
