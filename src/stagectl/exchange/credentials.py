"""Exchange credentials from the environment or a key file; never from argv, never logged.

Two keys, kept apart (seed 001, security; docs/operations.md, "Key hygiene"):

- the *trading* key, for run-live, preflight and emergency-close on the live box:
  ``STAGECTL_EXCHANGE_API_KEY`` and ``STAGECTL_EXCHANGE_API_SECRET``, or
  ``STAGECTL_EXCHANGE_KEY_FILE``;
- the *read-only* key, for research and data commands that read the account
  (``metrics fetch``): ``STAGECTL_READONLY_API_KEY`` and ``STAGECTL_READONLY_API_SECRET``,
  or ``STAGECTL_READONLY_KEY_FILE``. The trading key is never used in its place.

A key file is readable by its owner only (mode 0600 or stricter) and holds
``api_key=...`` and ``api_secret=...`` lines.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stagectl.domain.types import KeyPermissions
from stagectl.exchange.errors import CredentialsError

KEY_ENV = "STAGECTL_EXCHANGE_API_KEY"
SECRET_ENV = "STAGECTL_EXCHANGE_API_SECRET"
KEY_FILE_ENV = "STAGECTL_EXCHANGE_KEY_FILE"
READONLY_KEY_ENV = "STAGECTL_READONLY_API_KEY"
READONLY_SECRET_ENV = "STAGECTL_READONLY_API_SECRET"
READONLY_KEY_FILE_ENV = "STAGECTL_READONLY_KEY_FILE"


@dataclass(frozen=True)
class KeyRole:
    """Which key a command uses, and the variables that configure it."""

    name: str
    key_env: str
    secret_env: str
    file_env: str


TRADING = KeyRole("trading", KEY_ENV, SECRET_ENV, KEY_FILE_ENV)
READ_ONLY = KeyRole("read-only", READONLY_KEY_ENV, READONLY_SECRET_ENV, READONLY_KEY_FILE_ENV)


@dataclass(frozen=True)
class Credentials:
    """An API key pair; ``repr`` hides both values so they cannot leak into logs."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    source: str = ""

    def __repr__(self) -> str:
        return f"Credentials(source={self.source!r})"


def load_credentials(
    env: Mapping[str, str] | None = None, *, role: KeyRole = TRADING
) -> Credentials | None:
    """The configured credentials of ``role``, None when none are configured;
    CredentialsError when they are configured badly (half a pair, unreadable or unsafe
    key file)."""
    env = os.environ if env is None else env
    key, secret = env.get(role.key_env), env.get(role.secret_env)
    if key or secret:
        if not (key and secret):
            raise CredentialsError(f"set both {role.key_env} and {role.secret_env}, or neither")
        return Credentials(key, secret, "environment")
    key_file = env.get(role.file_env)
    if key_file:
        return _read_key_file(Path(key_file))
    return None


def require_credentials(
    env: Mapping[str, str] | None = None, *, role: KeyRole = TRADING
) -> Credentials:
    credentials = load_credentials(env, role=role)
    if credentials is None:
        extra = ""
        if role is READ_ONLY and _has_trading_key(env):
            extra = f" (the trading key in {KEY_ENV}/{KEY_FILE_ENV} is for the live box only)"
        raise CredentialsError(
            f"no {role.name} exchange credentials: set {role.key_env} and {role.secret_env}, "
            f"or {role.file_env} to a file of mode 0600{extra}"
        )
    return credentials


def _has_trading_key(env: Mapping[str, str] | None) -> bool:
    env = os.environ if env is None else env
    return any(env.get(name) for name in (KEY_ENV, SECRET_ENV, KEY_FILE_ENV))


def refuse_trading_rights(permissions: KeyPermissions | None, *, command: str) -> None:
    """CredentialsError when the venue says the read-only key can trade or withdraw.
    Where the venue does not say (None), the key is taken at its word."""
    if permissions is None or not (permissions.can_trade or permissions.can_withdraw):
        return
    raise CredentialsError(
        f"{command} needs a read-only key, but the exchange reports this one as "
        f"{permissions.describe()}; create a key with reading only",
        where=READONLY_KEY_ENV,
    )


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
