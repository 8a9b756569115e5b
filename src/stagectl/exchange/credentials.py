"""Exchange credentials from the environment or a key file; never from argv, never logged.

``STAGECTL_EXCHANGE_API_KEY`` and ``STAGECTL_EXCHANGE_API_SECRET``, or
``STAGECTL_EXCHANGE_KEY_FILE``: a file readable by its owner only (mode 0600 or
stricter) holding ``api_key=...`` and ``api_secret=...`` lines.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stagectl.exchange.errors import CredentialsError

KEY_ENV = "STAGECTL_EXCHANGE_API_KEY"
SECRET_ENV = "STAGECTL_EXCHANGE_API_SECRET"
KEY_FILE_ENV = "STAGECTL_EXCHANGE_KEY_FILE"


@dataclass(frozen=True)
class Credentials:
    """An API key pair; ``repr`` hides both values so they cannot leak into logs."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    source: str = ""

    def __repr__(self) -> str:
        return f"Credentials(source={self.source!r})"


def load_credentials(env: Mapping[str, str] | None = None) -> Credentials | None:
    """The configured credentials, None when none are configured; CredentialsError when
    they are configured badly (half a pair, unreadable or unsafe key file)."""
    env = os.environ if env is None else env
    key, secret = env.get(KEY_ENV), env.get(SECRET_ENV)
    if key or secret:
        if not (key and secret):
            raise CredentialsError(f"set both {KEY_ENV} and {SECRET_ENV}, or neither")
        return Credentials(key, secret, "environment")
    key_file = env.get(KEY_FILE_ENV)
    if key_file:
        return _read_key_file(Path(key_file))
    return None


def require_credentials(env: Mapping[str, str] | None = None) -> Credentials:
    credentials = load_credentials(env)
    if credentials is None:
        raise CredentialsError(
            f"no exchange credentials: set {KEY_ENV} and {SECRET_ENV}, or {KEY_FILE_ENV} "
            "to a file of mode 0600"
        )
    return credentials


def _read_key_file(path: Path) -> Credentials:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        message = f"cannot read the key file ({error.strerror})"
        raise CredentialsError(message, where=str(path)) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(
            f"key file is readable by group or others (mode {stat.S_IMODE(mode):04o}); "
            "run chmod 600 on it",
            where=str(path),
        )
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[name.strip().lower()] = value.strip()
    key, secret = values.get("api_key"), values.get("api_secret")
    if not (key and secret):
        raise CredentialsError(
            "key file needs api_key=... and api_secret=... lines", where=str(path)
        )
    return Credentials(key, secret, str(path))
