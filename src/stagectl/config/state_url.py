"""Where the state lives: a SQLite file (the default) or a PostgreSQL database URL.

``--state`` / ``STAGECTL_STATE`` take either. A ``postgresql://`` (or ``postgres://``) URL
names the server, user and database; the password never travels in it (a URL is argv,
shell history and error messages): it comes from ``PGPASSWORD``, ``~/.pgpass`` (libpq reads
both) or the 0600 file named by ``STAGECTL_STATE_PASSWORD_FILE``. A URL that carries a
password is refused, and the message shows it masked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stagectl.config._private import UnsafeFile, read_owner_only
from stagectl.errors import InputError

PASSWORD_FILE_ENV = "STAGECTL_STATE_PASSWORD_FILE"
URL_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class PostgresURL:
    """A PostgreSQL state database: the URL without a password (safe to print).

    (urllib.parse is imported where it is used: every command imports this module.)"""

    url: str

    def __str__(self) -> str:
        return self.url

    @property
    def database(self) -> str:
        from urllib.parse import urlsplit

        return urlsplit(self.url).path.lstrip("/")


StateLocation = Path | PostgresURL
"""A state database: the SQLite file's path, or a PostgreSQL URL."""


def is_state_url(text: str) -> bool:
    return text.split("://", 1)[0].lower() in URL_SCHEMES and "://" in text


def mask_url(text: str) -> str:
    """The URL with any password replaced by ``***`` (for messages)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(text)
    if parts.password is None:
        return text
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a port that is no number: keep nothing after the scheme
        return f"{parts.scheme}://***"
    user = parts.username or ""
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def parse_state_location(text: str) -> StateLocation:
    """``--state``'s value: a ``postgresql://`` URL, else a SQLite path."""
    if not is_state_url(text):
        return Path(text)
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as error:
        raise InputError(f"not a valid PostgreSQL URL: {error}", where=mask_url(text)) from None
    if parts.password is not None:
        raise InputError(
            "the state URL carries a password; remove it and set PGPASSWORD, use "
            f"~/.pgpass, or name a 0600 file in {PASSWORD_FILE_ENV}",
            where=mask_url(text),
        )
    if not parts.path.strip("/"):
        raise InputError("the state URL names no database (postgresql://HOST/DB)", where=text)
    return PostgresURL(urlunsplit(parts._replace(scheme="postgresql")))


def password_from_file() -> str | None:
    """The password in ``STAGECTL_STATE_PASSWORD_FILE`` (first line), or None when unset.

    The file must be readable by its owner only (mode 0600 or stricter), as libpq asks of
    ~/.pgpass; anything looser is refused rather than used."""
    raw = os.environ.get(PASSWORD_FILE_ENV)
    if not raw:
        return None
    path = Path(raw).expanduser()
    try:
        lines = read_owner_only(path).splitlines()
    except UnsafeFile as error:
        if error.mode is not None:
            message = f"the password file is readable by others (mode {error.mode:o}); "
            raise InputError(message + f"chmod 600 {path}", where=PASSWORD_FILE_ENV) from None
        message = f"cannot read the password file {path}: {error.reason}"
        raise InputError(message, where=PASSWORD_FILE_ENV) from None
    return lines[0] if lines else ""


def state_exists(location: StateLocation) -> bool:
    """Whether there is a state database to read: the SQLite file exists; a PostgreSQL
    database is taken to (opening it says when it holds no stagectl state)."""
    return isinstance(location, PostgresURL) or location.is_file()
