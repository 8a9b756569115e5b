"""``stagectl notify unit-failed`` and ``notify test``: tell the desk's channels.

``unit-failed``: a stagectl systemd unit failed.
The ``OnFailure=`` handler of the units ``init --with-units`` writes
(``stagectl-alert@.service``) runs it with the failed unit's name; systemd gives the
handler how the unit ended (``MONITOR_SERVICE_RESULT``, ``MONITOR_EXIT_STATUS``), which
the CLI passes in. The alert goes to the channels of the risk guard config's ``notify``
section (``alerts.unit_failed``).

``test``: one test message to every channel, so the desk sees each one work (webhook,
apprise, Telegram) before an alert needs it.

Entries: ``run(UnitFailedRequest, *, home, env, delivery) -> UnitFailedResult`` and
``run_test(TestMessageRequest, *, home, env, delivery) -> TestMessageResult``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.config.loader import RISK_GUARD_FILE
from stagectl.errors import ConfigError
from stagectl.notify import Delivery, NotifyResult
from stagectl.services.guard import alerts


@dataclass(frozen=True)
class UnitFailedRequest:
    """The unit that failed, how it ended (as systemd says, when it does) and the guard
    config whose ``notify`` section names the channels (None: the home's)."""

    unit: str
    result: str | None = None
    exit_status: str | None = None
    config: Path | None = None


@dataclass
class UnitFailedResult:
    """Each channel's answer; ``told`` when one of them took the alert."""

    unit: str
    result: str | None
    exit_status: str | None
    notifications: list[NotifyResult] = field(default_factory=list)

    @property
    def told(self) -> bool:
        return any(answer.sent for answer in self.notifications)

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "result": self.result,
            "exit_status": self.exit_status,
            "notifications": [answer.to_dict() for answer in self.notifications],
        }


def run(
    request: UnitFailedRequest,
    *,
    home: Home,
    env: Mapping[str, str] | None = None,
    delivery: Delivery | None = None,
) -> UnitFailedResult:
    """Tell every channel; ConfigError when the config's notify section does not load."""
    answers = alerts.unit_failed(
        home,
        request.config,
        unit=request.unit,
        result=request.result,
        exit_status=request.exit_status,
        env=env,
        delivery=delivery,
    )
    return UnitFailedResult(
        request.unit,
        request.result,
        request.exit_status,
        _loaded(answers, home, request.config),
    )


@dataclass(frozen=True)
class TestMessageRequest:
    """The guard config whose ``notify`` section names the channels (None: the home's)."""

    config: Path | None = None


@dataclass
class TestMessageResult:
    """Each channel's answer to the test message; ``told`` when one of them took it."""

    notifications: list[NotifyResult] = field(default_factory=list)

    @property
    def told(self) -> bool:
        return any(answer.sent for answer in self.notifications)

    def to_dict(self) -> dict[str, Any]:
        return {"notifications": [answer.to_dict() for answer in self.notifications]}


def run_test(
    request: TestMessageRequest,
    *,
    home: Home,
    env: Mapping[str, str] | None = None,
    delivery: Delivery | None = None,
) -> TestMessageResult:
    """A test message to every channel; ConfigError when the notify section does not load."""
    answers = alerts.test_message(home, request.config, env=env, delivery=delivery)
    return TestMessageResult(_loaded(answers, home, request.config))


def _loaded(
    answers: list[NotifyResult] | None, home: Home, config: Path | None
) -> list[NotifyResult]:
    if answers is None:
        raise ConfigError(
            "notify: the risk guard config's notify section does not load; nobody was told "
            "(stagectl risk-guard names what is wrong)",
            where=str(home.config_file(RISK_GUARD_FILE, config).path),
        )
    return answers
