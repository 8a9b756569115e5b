"""`stagectl init`: create a stagectl home, copy the default configs, migrate the state.

Idempotent: directories that exist are left alone, config files already in the
home are kept (unless ``force``), and an up-to-date database is only opened. Besides
the home's own directories, init creates the artifact directory the home's stage3.yaml
names (``artifacts.dir``, ``artifacts/stage3``), which ``preflight`` checks and
``run-live`` writes below; a stage3.yaml that does not load is left to ``preflight`` to
report, and init says so. With ``units`` it also writes the systemd units and the
crontab for the home (``units``), after checking the credentials file first, so a refusal
leaves the home untouched.

Entry: ``run(InitRequest, *, home) -> InitResult``; ``home`` is the home to create.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stagectl.config.home import HOME_DIRS, Home, defaults_dir
from stagectl.config.state_url import StateLocation, state_exists
from stagectl.errors import InputError
from stagectl.reports import write_atomic
from stagectl.services.home import units as deploy
from stagectl.state.db import open_state


@dataclass(frozen=True)
class InitRequest:
    """``--force``: overwrite config files already in the home; ``--with-units``: also
    write the service units and the crontab, with ``--mail-to`` as cron's MAILTO
    (default: the current user)."""

    force: bool = False
    with_units: bool = False
    mail_to: str | None = None


@dataclass
class InitResult:
    """What ``init`` found and did, for the human and the JSON output."""

    home: Path
    state_path: StateLocation
    created_dirs: list[str] = field(default_factory=list)
    configs_written: list[str] = field(default_factory=list)
    configs_kept: list[str] = field(default_factory=list)
    configs_overwritten: list[str] = field(default_factory=list)
    migrations_applied: list[str] = field(default_factory=list)
    schema_version: int = 0
    notes: list[str] = field(default_factory=list)
    units: deploy.UnitsResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "home": str(self.home),
            "state": str(self.state_path),
            "schema_version": self.schema_version,
            "migrations_applied": self.migrations_applied,
            "created_dirs": self.created_dirs,
            "notes": self.notes,
            "config": {
                "written": self.configs_written,
                "kept": self.configs_kept,
                "overwritten": self.configs_overwritten,
            },
            "units": None if self.units is None else self.units.to_dict(),
        }


def run(request: InitRequest, *, home: Home) -> InitResult:
    """Create ``home``'s directories, copy the packaged configs, create and migrate the state."""
    if home.root.exists() and not home.root.is_dir():
        raise InputError("exists and is not a directory", where=str(home.root))
    files = _unit_files(request, home)
    result = InitResult(home=home.root, state_path=home.state_path)
    for name in HOME_DIRS:
        directory = home.root / name
        if not directory.is_dir():
            _mkdir(directory)
            result.created_dirs.append(name)
    _copy_configs(defaults_dir(), home.config_dir, force=request.force, result=result)
    _artifacts_dir(home, result)
    result.migrations_applied, result.schema_version = _migrate(home.state_path)
    if files is not None:
        result.units = deploy.write(files, home=home)
    return result


def _unit_files(request: InitRequest, home: Home) -> dict[str, str] | None:
    """The units and crontab ``--with-units`` writes, checked before anything is written."""
    if not request.with_units:
        if request.mail_to is not None:
            raise InputError("--mail-to only applies with --with-units", where="--mail-to")
        return None
    units = deploy.UnitsRequest(deploy.installed_stagectl(), request.mail_to or getpass.getuser())
    return deploy.prepare(units, home=home)


def _mkdir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"cannot create directory: {error.strerror}", where=str(directory)
        ) from error


def _artifacts_dir(home: Home, result: InitResult) -> None:
    """The directory stage3.yaml's ``artifacts.dir`` names (relative to the home)."""
    from stagectl.config.loader import load_stage3
    from stagectl.errors import ConfigError

    try:
        stage3, _ = load_stage3(home)
    except ConfigError as error:
        result.notes.append(f"{error}; its artifacts.dir was not created (see stagectl preflight)")
        return
    directory = home.root / Path(stage3.artifacts.dir).expanduser()
    if directory.is_dir():
        return
    _mkdir(directory)
    shown = directory.relative_to(home.root) if directory.is_relative_to(home.root) else directory
    result.created_dirs.append(shown.as_posix())


def _copy_configs(source: Path, target: Path, *, force: bool, result: InitResult) -> None:
    """Copy every packaged config file (baselines/ included), keeping the home's own files."""
    for packaged in sorted(source.rglob("*")):
        relative = packaged.relative_to(source)
        if not packaged.is_file() or any(part.startswith((".", "__")) for part in relative.parts):
            continue
        destination = target / relative
        name = relative.as_posix()
        if destination.exists() and not force:
            result.configs_kept.append(name)
            continue
        existed = destination.exists()
        _mkdir(destination.parent)
        # whole or not at all: a config cut short by an interruption would be kept
        # by the next init (it exists) and fail to load
        write_atomic(destination, packaged.read_bytes())
        (result.configs_overwritten if existed else result.configs_written).append(name)


def _migrate(path: StateLocation) -> tuple[list[str], int]:
    before: list[str] = []
    if state_exists(path):
        with open_state(path, migrate=False) as existing:
            before = existing.applied_migrations()
    with open_state(path, migrate=True) as db:
        after = db.applied_migrations()
    return [name for name in after if name not in before], len(after)
