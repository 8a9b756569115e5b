"""Secrets in notification settings: taken from the environment or an owner-only file,
and masked wherever a text might carry them.

A configured URL may name environment variables as ``${NAME}`` (upper case): the value
is put in when the alert is sent, so the config file holds no secret. A file of URLs
must be readable by its owner only (mode 0600 or stricter), as the exchange key file
and the signing key file must.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

# The owner-only file check lives in config (state_url's password file needs it too);
# apprise_urls and the telegram settings import it from here.
from stagectl.config._private import UnsafeFile as UnsafeFile
from stagectl.config._private import read_owner_only as read_owner_only
from stagectl.config.state_url import URL_SCHEMES, mask_url

VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|HMAC_KEY|WEBHOOK", re.IGNORECASE)
"""Environment variables whose values are masked in a could-not-judge alert's text."""
MIN_SECRET_CHARS = 6
"""Shorter values are not masked: masking ``1`` or ``on`` would garble every text."""
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")
_URL = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>[^\s\"'<>]+)")
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]+)?")
_QUERY = re.compile(r"[?#]")


@dataclass(frozen=True)
class Expanded:
    """A text with its ``${NAME}`` variables put in, the values used, the names unset."""

    text: str
    values: tuple[str, ...]
    missing: tuple[str, ...]


def expand(text: str, env: Mapping[str, str]) -> Expanded:
    """Put each ``${NAME}`` of ``text`` in from ``env``; an unset one is listed missing."""
    values: list[str] = []
    missing: list[str] = []

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = env.get(name, "")
        if not found:
            missing.append(name)
        else:
            values.append(found)
        return found

    return Expanded(VARIABLE.sub(value, text), tuple(values), tuple(dict.fromkeys(missing)))


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that may be credentials: the whole URL, its user, password,
    host part, path segments and query values (each also URL-decoded)."""
    parts = [url]
    try:
        split = urlsplit(url)
    except ValueError:
        return parts
    parts += [split.username or "", split.password or "", split.netloc]
    parts += split.path.split("/")
    parts += [value for _, value in parse_qsl(split.query)]
    decoded = [unquote(p) for p in parts]
    return [p for p in dict.fromkeys(parts + decoded) if len(p) >= MIN_SECRET_CHARS]


def env_secrets(env: Mapping[str, str]) -> list[str]:
    """The values of environment variables named like secrets (``SECRET_NAME``)."""
    return [
        value
        for name, value in env.items()
        if SECRET_NAME.search(name) and len(value) >= MIN_SECRET_CHARS
    ]


def mask(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***`` (longest first, so a
    secret that contains another is masked whole)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with the secrets and any ``user:password@`` of a URL replaced by ``***``."""
    masked = mask(text, [s for s in secrets if len(s) >= MIN_SECRET_CHARS])
    return _USERINFO.sub(r"\g<scheme>***@", masked)


def mask_urls(text: str) -> str:
    """``text`` with every URL cut to what cannot be a credential: an http(s) URL keeps
    its host (``https://hooks.slack.com/***``); a PostgreSQL state URL keeps all but its
    password and query (``postgresql://desk:***@db:5432/desk``, as ``--state`` messages
    show it); any other scheme keeps only itself (``tgram://***``: apprise URLs carry
    their tokens in the host part). For texts that must never hold a secret whatever the
    config says, such as the JSON-line logs: a config error may quote a webhook URL whole."""

    def cut(match: re.Match[str]) -> str:
        scheme, rest = match.group("scheme"), match.group("rest")
        if scheme.lower() in ("http://", "https://"):
            host = _HOST.match(rest.rpartition("@")[2] if "@" in rest.split("/")[0] else rest)
            if host is not None and host.end() > 0:
                kept = host.group(0)
                return f"{scheme}{kept}/***" if rest != kept else f"{scheme}{kept}"
        if scheme[:-3].lower() in URL_SCHEMES:
            return _state_url(scheme, rest)
        return f"{scheme}***"

    return _URL.sub(cut, text)


def _state_url(scheme: str, rest: str) -> str:
    """A ``postgresql://`` URL with its password masked (``state_url.mask_url``) and its
    query cut (libpq reads a password there too); only the scheme when it does not parse
    as one (a password cut short by a space would otherwise show as the port)."""
    try:
        masked = mask_url(scheme + rest)
        parts = urlsplit(masked)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"{scheme}***"
    if parts.hostname and not _HOST.fullmatch(parts.hostname):
        return f"{scheme}***"
    kept = _QUERY.split(masked, maxsplit=1)[0]
    return kept + (f"{masked[len(kept)]}***" if len(masked) > len(kept) else "")
