"""Slack, Discord, e-mail, PagerDuty, Opsgenie and the rest, through apprise.

``notify.apprise_urls`` lists apprise URLs (``slack://...``, ``discord://...``,
``mailtos://...``, ``pagerduty://...``, ``opsgenie://...``, ``json://host/path``);
``${NAME}`` in a URL is put in from the environment when the alert is sent, and
``notify.apprise_urls_file`` names a file of more URLs, one a line, readable by its
owner only. Each URL is its own channel, named ``apprise:<scheme>`` in results: the rest
of a URL (tokens, passwords) never appears in a result, an error or a log, and apprise's
own log lines are captured, not printed.

apprise is imported only when an alert goes to one of these URLs, never at
``stagectl --help`` or completion time.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stagectl.notify._http import DEFAULT_BACKOFF_S, DEFAULT_RETRIES, NotifyResult, skipped
from stagectl.notify._secrets import UnsafeFile, expand, read_owner_only, url_secrets

CHANNEL = "apprise"
FILE_CHANNEL = "apprise:file"
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
_STATUS = re.compile(r"error=(\d{3})")
QUIET_LOGGERS = ("apprise", "requests", "urllib3")
NOTIFY_TYPES = {"CRITICAL": "failure", "HIGH": "failure", "MEDIUM": "warning"}
"""apprise's message type by severity (colour and icon on chat services); else info."""


@dataclass(frozen=True)
class Target:
    """One apprise URL, its variables put in; ``repr`` hides the URL."""

    channel: str
    url: str = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False, default=())


def channel_of(url: str) -> str:
    """``apprise:<scheme>`` (the scheme is never a secret), else ``apprise``."""
    match = _SCHEME.match(url)
    return f"{CHANNEL}:{match.group(1).lower()}" if match else CHANNEL


def targets(
    urls: Sequence[str], urls_file: Path | None, env: Mapping[str, str]
) -> tuple[list[Target], list[NotifyResult]]:
    """The URLs to send to, and a result for each that cannot be used: a variable not
    set (``skipped``), a file that is unsafe or unreadable (``failed``)."""
    lines = list(urls)
    problems: list[NotifyResult] = []
    file_secrets: list[str] = []
    if urls_file is not None:
        try:
            text = read_owner_only(urls_file)
        except UnsafeFile as error:
            problems.append(NotifyResult(FILE_CHANNEL, "failed", 0, f"apprise_urls_file: {error}"))
        else:
            found = [ln.strip() for ln in text.splitlines()]
            from_file = [ln for ln in found if ln and not ln.startswith("#")]
            lines += from_file
            file_secrets = from_file
    found_targets: list[Target] = []
    for line in lines:
        expanded = expand(line, env)
        channel = channel_of(line)
        if expanded.missing:
            problems.append(skipped(channel, f"{' and '.join(expanded.missing)} not set"))
            continue
        secrets = [*expanded.values, *url_secrets(expanded.text), *file_secrets]
        found_targets.append(Target(channel, expanded.text, tuple(secrets)))
    return found_targets, problems


def send(
    text: str,
    target: Target,
    *,
    title: str,
    severity: str | None = None,
    retries: int = DEFAULT_RETRIES,
    backoff_s: float = DEFAULT_BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> NotifyResult:
    """Send ``text`` to one apprise URL, retrying as ``post_json`` does (a 4xx other than
    429, as apprise reports it, is final); never raises."""
    try:
        import apprise
    except ImportError:
        return NotifyResult(target.channel, "failed", 0, "apprise is not installed")
    notify_type = NOTIFY_TYPES.get(severity or "", "info")
    attempts = 0
    error = "not attempted"
    for attempt in range(max(retries, 0) + 1):
        if attempt:
            sleep(backoff_s * 2 ** (attempt - 1))
        attempts += 1
        error, final = _once(apprise, target.url, text, title, notify_type)
        if not error:
            return NotifyResult(target.channel, "sent", attempts)
        if final:
            break
    return NotifyResult(target.channel, "failed", attempts, error)


def _once(apprise: Any, url: str, text: str, title: str, notify_type: str) -> tuple[str, bool]:
    """One delivery: ("", _) when sent, else the error and whether it is final. The error
    is built from a status code or an exception class, never from apprise's log text."""
    with _captured(*QUIET_LOGGERS) as records:
        try:
            sender = apprise.Apprise()
            if not sender.add(url):
                return "not a URL apprise can send to (check its scheme and form)", True
            delivered = sender.notify(body=text, title=title, notify_type=notify_type)
        except Exception as failure:
            return f"apprise failed ({type(failure).__name__})", False
    if delivered:
        return "", False
    codes = [int(c) for r in records for c in _STATUS.findall(r.getMessage())]
    if codes:
        code = codes[-1]
        return f"HTTP {code}", 400 <= code < 500 and code != 429
    return "apprise could not deliver the message", False


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _captured(*names: str) -> Iterator[list[logging.LogRecord]]:
    """The WARNING and worse records of the loggers ``names`` while the block runs, kept
    from every other handler, and their DEBUG and INFO records not made at all: apprise
    and the HTTP libraries under it write request URLs, tokens included, into their log
    lines, which must reach neither stderr nor a log file."""
    keep = _Keep()
    saved = []
    for name in names:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate, logger.level))
        logger.propagate = False
        logger.setLevel(logging.WARNING)
        logger.addHandler(keep)
    try:
        yield keep.records
    finally:
        for logger, propagate, level in saved:
            logger.removeHandler(keep)
            logger.propagate = propagate
            logger.setLevel(level)
