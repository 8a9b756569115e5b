"""The compliance gate (seed 000): a Stage6 change takes effect only after the config
is updated and the compliance report is signed.

The compliance report is a ``verify-thresholds`` report. It is the *sign-off* for a
core.yaml when all of these hold:

- its HMAC signature, which covers the whole report, verifies with the home's
  signing key (a report of the old partial scheme never does);
- it names its signer (``--signed-off-by``) in its ``sign_off`` section;
- every threshold check in it passed (its ``checks`` and ``summary``);
- its first input is this core.yaml (the same sha256) and its second the baseline
  the home approves now (the same sha256): a pass against another baseline, say one
  given with ``--baseline``, proves nothing about the approved values.

It is looked for in two places, both cheap: every ``*.json`` directly in the home's
``reports/`` (works without a state database, e.g. in a CI checkout, and for a report
copied in from an archive), and every ``verify-thresholds`` report the state
database's ``reports`` table recorded (``publish`` records each ``--out`` with its
absolute path, so a sign-off written outside the home is found too). The table is
only an index: every file is read and judged itself. The newest qualifying report
(by its signed ``generated_at``) wins.

``check`` says what was found, for a dry look; :meth:`Compliance.require` refuses a
publication without a sign-off (``CheckFailed``, exit 1), naming core.yaml's sha256
and the command that produces one.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stagectl.config.home import ConfigSource, Home
from stagectl.config.loader import BASELINE_FILE, CORE_FILE, file_sha256
from stagectl.config.state_url import state_exists
from stagectl.errors import CheckFailed, InputError, SigningKeyError, StagectlError
from stagectl.reports import (
    SigningKey,
    load_signing_key,
    parse_generated_at,
    parse_report,
    verify_envelope,
)
from stagectl.reports.signing import KEY_ENV, KEY_FILE_ENV
from stagectl.services.stage6.verify_thresholds import KIND, SIGN_OFF

SHA_SHOWN = 12  # hex digits of a sha256 shown in messages
_KIND_BYTES = KIND.encode()


@dataclass(frozen=True)
class SignOff:
    """The report that signs off a core.yaml."""

    path: Path
    sha256: str  # of the report file's bytes
    signed_off_by: str
    generated_at: str
    key_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": str(self.path),
            "report_sha256": self.sha256,
            "signed_off_by": self.signed_off_by,
            "generated_at": self.generated_at,
            "key_id": self.key_id,
        }


@dataclass(frozen=True)
class Rejected:
    """A ``verify-thresholds`` report that is not the sign-off, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Compliance:
    """Whether a core.yaml has a compliance sign-off; ``rejected`` newest file first."""

    config: ConfigSource
    config_sha256: str
    sign_off: SignOff | None
    rejected: tuple[Rejected, ...]
    key_configured: bool
    key_error: SigningKeyError | None
    command: str

    def record(self) -> dict[str, Any] | None:
        """What a published report or an applied decision cites: core.yaml's sha256 and
        the sign-off; None without one."""
        if self.sign_off is None:
            return None
        return {"config_sha256": self.config_sha256, **self.sign_off.to_dict()}

    def describe(self) -> str:
        """One stderr line: who signed this core.yaml off, or that it is a dry look."""
        sha = self.config_sha256[:SHA_SHOWN]
        if self.sign_off is not None:
            s = self.sign_off
            return (
                f"compliance: core.yaml sha256 {sha} signed off by {s.signed_off_by} "
                f"({_shown(s.path)}, {s.generated_at})"
            )
        return (
            f"compliance: core.yaml sha256 {sha} has no compliance sign-off{self._why()}; "
            f"a dry look, nothing is published; to publish, run: {self.command}"
        )

    def require(self, action: str) -> SignOff:
        """The sign-off, or refuse ``action`` (exit 1) in one line naming core.yaml's
        sha256 and the command that signs it off; an unusable key is its own error."""
        if self.key_error is not None:
            raise self.key_error
        if self.sign_off is None:
            raise CheckFailed(
                f"{action} refused: core.yaml sha256 {self.config_sha256[:SHA_SHOWN]} has no "
                f"compliance sign-off{self._why()}; run: {self.command}",
                where=str(self.config.path),
            )
        return self.sign_off

    def _why(self) -> str:
        if self.key_error is not None:
            return f" (the signing key is unusable: {self.key_error})"
        if not self.key_configured:
            return f" (no signing key to verify one: set {KEY_ENV} or {KEY_FILE_ENV})"
        if self.rejected:
            newest = self.rejected[0]
            return f" ({_shown(newest.path)} {newest.reason})"
        return ""


def check(config: ConfigSource, *, home: Home) -> Compliance:
    """Look for the sign-off of ``config`` in the home's reports/ and reports table."""
    config_sha256 = file_sha256(config.path)
    command = sign_off_command(config, home)
    try:
        key = load_signing_key()
    except SigningKeyError as error:
        return Compliance(config, config_sha256, None, (), False, error, command)
    if key is None:
        return Compliance(config, config_sha256, None, (), False, None, command)
    baseline_sha256 = file_sha256(home.config_file(BASELINE_FILE).path)
    found: list[tuple[datetime, SignOff]] = []
    rejected: list[tuple[float, Rejected]] = []
    for path in _candidates(home):
        judged = _judge_file(path, key, config_sha256, baseline_sha256)
        if isinstance(judged, SignOff):
            found.append((parse_generated_at(judged.generated_at), judged))
        elif judged is not None:
            rejected.append((_mtime(path), Rejected(path, judged)))
    newest = max(found, key=lambda item: item[0])[1] if found else None
    ordered = tuple(r for _, r in sorted(rejected, key=lambda item: item[0], reverse=True))
    return Compliance(config, config_sha256, newest, ordered, True, None, command)


def sign_off_command(config: ConfigSource, home: Home) -> str:
    """The exact command that writes the sign-off for ``config`` into the home's reports/.

    ``--out`` is relative to the working directory, so outside the home the command
    names the home and an absolute path; ``-c`` when core.yaml is not the home's own.
    """
    name = f"compliance-{datetime.now(UTC).date().isoformat()}.json"
    words = ["stagectl"]
    if Path.cwd().resolve() == home.root:
        out = f"reports/{name}"
    else:
        words += ["--home", str(home.root)]
        out = str(home.reports_dir / name)
    words.append("verify-thresholds")
    if not config.packaged and config.path != home.config_dir / CORE_FILE:
        words += ["-c", str(config.path)]
    words += ["--out", out, "--signed-off-by"]
    return shlex.join(words) + " NAME"


def _candidates(home: Home) -> list[Path]:
    """The home's reports/*.json, then the recorded verify-thresholds reports; each once."""
    paths: dict[Path, None] = {}
    if home.reports_dir.is_dir():
        for path in sorted(home.reports_dir.glob("*.json")):
            paths.setdefault(path.resolve(), None)
    for path in _recorded(home):
        paths.setdefault(path.resolve(), None)
    return [p for p in paths if p.is_file()]


def _recorded(home: Home) -> list[Path]:
    """The verify-thresholds reports in the state's reports table; none when there is no
    state database or it cannot be read (the reports/ directory still counts)."""
    if not state_exists(home.state_path):
        return []
    from stagectl.state.db import DatabaseError, open_state
    from stagectl.state.reports import list_reports

    try:
        with open_state(home.state_path, migrate=False) as db:
            rows = list_reports(db, kind=KIND)
    except (StagectlError, DatabaseError):
        return []
    return [Path(row.path) for row in rows if row.path]


def _judge_file(
    path: Path, key: SigningKey, config_sha256: str, baseline_sha256: str
) -> SignOff | str | None:
    """The sign-off in ``path``; else why not; None when it is not a verify-thresholds
    report at all (reports/ holds every kind)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    if _KIND_BYTES not in raw:  # cheap: most reports there are other kinds, many large
        return None
    try:
        envelope = parse_report(raw, path)
    except InputError as error:
        return error.message
    if envelope["kind"] != KIND:
        return None
    reason = judge(envelope, key, config_sha256=config_sha256, baseline_sha256=baseline_sha256)
    if reason is not None:
        return reason
    return SignOff(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        signed_off_by=str(_signer(envelope["body"][SIGN_OFF])),
        generated_at=envelope["generated_at"],
        key_id=envelope["signature"]["key_id"],
    )


def judge(
    envelope: dict[str, Any], key: SigningKey, *, config_sha256: str, baseline_sha256: str
) -> str | None:
    """Why ``envelope`` (a verify-thresholds report) is not the sign-off for the core.yaml
    and baseline of these sha256; None when it is."""
    verdict = verify_envelope(envelope, key)
    if not verdict.valid:
        return f"does not verify: {verdict.reason}"
    inputs = [i.get("sha256") if isinstance(i, dict) else None for i in envelope["inputs"]]
    if len(inputs) < 2:
        return "does not name core.yaml and the baseline among its inputs"
    if inputs[0] != config_sha256:
        return f"was made for core.yaml sha256 {str(inputs[0])[:SHA_SHOWN]}"
    if inputs[1] != baseline_sha256:
        return (
            f"audited baseline sha256 {str(inputs[1])[:SHA_SHOWN]}, "
            "not the home's approved baseline"
        )
    body = envelope["body"]
    if not _all_passed(body):
        return "records failed threshold checks"
    if _signer(body.get(SIGN_OFF)) is None:
        return "names no signer (written without --signed-off-by)"
    try:
        parse_generated_at(envelope["generated_at"])
    except ValueError:
        return "has a generated_at that is not a time"
    return None


def _all_passed(body: dict[str, Any]) -> bool:
    summary, checks = body.get("summary"), body.get("checks")
    if not isinstance(summary, dict) or summary.get("failed") != 0:
        return False
    return (
        isinstance(checks, list)
        and len(checks) > 0
        and all(isinstance(c, dict) and c.get("status") == "pass" for c in checks)
    )


def _signer(section: Any) -> str | None:
    name = section.get("signed_off_by") if isinstance(section, dict) else None
    if not isinstance(name, str) or not name.strip():
        return None
    return name.strip()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when under it (not ``/``), else
    absolute."""
    cwd = Path.cwd().resolve()
    if cwd == Path(cwd.anchor) or not path.is_relative_to(cwd):
        return str(path)
    return str(path.relative_to(cwd))
