"""Where a stagectl home lives and which config file a command uses.

A home (``STAGECTL_HOME``, default: the current directory) holds ``config/``,
``state/stagectl.db``, ``artifacts/``, ``reports/`` and ``logs/``. A file
missing from ``config/`` falls back to the packaged default shipped inside the
wheel, and callers report which one they used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stagectl.config.state_url import StateLocation

HOME_ENV = "STAGECTL_HOME"
HOME_DIRS = ("config", "state", "artifacts", "reports", "logs", "metrics")


def defaults_dir() -> Path:
    """The packaged default configs: ``stagectl/defaults`` in a wheel.

    In a source checkout (editable install) the wheel's force-include has not
    run, so the repository's top-level ``config/`` is the one source. The package
    directory comes from ``__file__`` rather than ``importlib.resources``, whose
    import (with tempfile and random) every command would otherwise pay.
    """
    return _packaged("defaults", "config", "default configs")


def deploy_dir() -> Path:
    """The packaged templates of the systemd units and the crontab: ``stagectl/deploy`` in
    a wheel, the repository's ``deploy/`` in a source checkout (as ``defaults_dir``)."""
    return _packaged("deploy", "deploy", "service templates")


def _packaged(in_wheel: str, in_checkout: str, what: str) -> Path:
    packaged = Path(__file__).resolve().parents[1] / in_wheel
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / in_checkout
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"stagectl's packaged {what} are missing; reinstall stagectl")


@dataclass(frozen=True)
class ConfigSource:
    """A config file and whether it is the packaged default."""

    path: Path
    packaged: bool

    def describe(self) -> str:
        return f"{self.path} (packaged default)" if self.packaged else str(self.path)


@dataclass(frozen=True)
class Home:
    """The directories of one stagectl home."""

    root: Path
    state_override: StateLocation | None = None

    @classmethod
    def resolve(cls, root: Path | None = None, state: StateLocation | None = None) -> Home:
        base = root or Path(os.environ.get(HOME_ENV) or Path.cwd())
        return cls(root=base.expanduser().resolve(), state_override=state)

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def state_path(self) -> StateLocation:
        """The state database: ``--state`` (a SQLite file or a PostgreSQL URL), else the
        home's ``state/stagectl.db``."""
        return self.state_override or self.root / "state" / "stagectl.db"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def config_file(self, name: str, explicit: Path | None = None) -> ConfigSource:
        """The config file a command uses: ``explicit``, else home, else packaged."""
        if explicit is not None:
            return ConfigSource(explicit, packaged=False)
        local = self.config_dir / name
        if local.is_file():
            return ConfigSource(local, packaged=False)
        return ConfigSource(defaults_dir() / name, packaged=True)
