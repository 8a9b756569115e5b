"""One alert to every configured channel: Telegram, the webhook, the apprise URLs.

``send`` returns one ``NotifyResult`` per channel and never raises: a channel that
fails for a reason nobody foresaw is a ``failed`` result naming the exception class.
``channels`` names the channels an alert would go to (for an alert held back as a
duplicate), ``secrets`` every secret the settings reach (to mask a text that is sent).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from stagectl.config.risk_guard import NotifyConfig
from stagectl.notify import apprise_urls, telegram, webhook
from stagectl.notify._http import NotifyResult, skipped
from stagectl.notify._secrets import env_secrets, mask_text, url_secrets

DEFAULT_TITLE = "stagectl risk-guard"


@dataclass(frozen=True)
class Alert:
    """One message: its text (Telegram, apprise), the webhook's extra JSON fields, the
    title (the webhook's ``source``, apprise's title) and its severity."""

    text: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    title: str = DEFAULT_TITLE
    severity: str | None = None


@dataclass(frozen=True)
class Delivery:
    """How to send: where a relative ``apprise_urls_file`` is, how to wait, and whether
    to send at all (``muted``: why not; every channel is then reported skipped)."""

    base_dir: Path | None = None
    sleep: Callable[[float], None] = time.sleep
    muted: str | None = None


def send(
    alert: Alert, settings: NotifyConfig, env: Mapping[str, str], delivery: Delivery | None = None
) -> list[NotifyResult]:
    """``alert`` to each channel of ``settings``; the results, never an exception."""
    how = delivery or Delivery()
    if how.muted:
        return held_back(settings, how.muted)
    results = [
        _safely(
            telegram.CHANNEL,
            lambda: telegram.send_configured(
                alert.text,
                settings.telegram,
                env,
                base_dir=how.base_dir,
                retries=settings.retries,
                sleep=how.sleep,
            ),
        )
    ]
    url = settings.webhook_url
    if url:
        body = {"source": alert.title, "text": alert.text, **alert.fields}
        results.append(
            _safely(
                webhook.CHANNEL,
                lambda: webhook.post_alert(url, body, retries=settings.retries, sleep=how.sleep),
            )
        )
    found, problems = _apprise_targets(settings, env, how)
    results += problems
    for target in found:
        results.append(
            _safely(
                target.channel,
                partial(
                    apprise_urls.send,
                    alert.text,
                    target,
                    title=alert.title,
                    severity=alert.severity,
                    retries=settings.retries,
                    sleep=how.sleep,
                ),
            )
        )
    return results


def held_back(settings: NotifyConfig, reason: str) -> list[NotifyResult]:
    """A ``skipped`` result with ``reason`` for each channel the alert would go to."""
    return [skipped(name, reason) for name in channels(settings)]


def channels(settings: NotifyConfig) -> list[str]:
    """The channels an alert goes to (Telegram always: unset credentials skip it)."""
    names = [telegram.CHANNEL]
    if settings.webhook_url:
        names.append(webhook.CHANNEL)
    names += [apprise_urls.channel_of(url) for url in settings.apprise_urls]
    if settings.apprise_urls_file:
        names.append(apprise_urls.FILE_CHANNEL)
    return names


def secrets(
    settings: NotifyConfig, env: Mapping[str, str], delivery: Delivery | None = None
) -> list[str]:
    """Every secret the settings reach, and the environment's secret-looking values."""
    found = [env.get(settings.telegram.bot_token_env, "")]
    try:
        token = telegram.bot_token(settings.telegram, env, (delivery or Delivery()).base_dir)
    except telegram.TokenUnusable:
        token = None
    if token is not None:
        found.append(token[0])
    if settings.webhook_url:
        found += url_secrets(settings.webhook_url)
    targets, _ = _apprise_targets(settings, env, delivery or Delivery())
    for target in targets:
        found += target.secrets
    return [s for s in [*found, *env_secrets(env)] if s]


def mask_secrets(
    text: str, settings: NotifyConfig, env: Mapping[str, str], delivery: Delivery | None = None
) -> str:
    """``text`` with every secret of :func:`secrets` and any URL's ``user:password@``
    replaced by ``***``."""
    return mask_text(text, secrets(settings, env, delivery))


def _apprise_targets(
    settings: NotifyConfig, env: Mapping[str, str], how: Delivery
) -> tuple[list[apprise_urls.Target], list[NotifyResult]]:
    path = None
    if settings.apprise_urls_file:
        path = Path(settings.apprise_urls_file).expanduser()
        if not path.is_absolute() and how.base_dir is not None:
            path = how.base_dir / path
    try:
        return apprise_urls.targets(settings.apprise_urls, path, env)
    except Exception as failure:
        error = f"internal error reading the apprise URLs ({type(failure).__name__})"
        return [], [NotifyResult(apprise_urls.CHANNEL, "failed", 0, error)]


def _safely(channel: str, attempt: Callable[[], NotifyResult]) -> NotifyResult:
    """The channel's result; an exception it should never have raised becomes ``failed``
    (its class only: the message might carry a secret)."""
    try:
        return attempt()
    except Exception as failure:
        return NotifyResult(channel, "failed", 0, f"internal error ({type(failure).__name__})")
