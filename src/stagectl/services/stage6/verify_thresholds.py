"""verify-thresholds: audit core.yaml's governed values against the approved baseline.

Loads both files (each falls back to the packaged default when the home has
none), runs the pure audit in ``stagectl.domain.thresholds`` and returns the
checks with the report body. Publishing (envelope, signature, file) is the
caller's choice through ``stagectl.services.publish``.

``--signed-off-by NAME`` adds a ``sign_off`` section naming who signs the
compliance; it is signed with the checks, so a name cannot be added to (or
changed in) a report after signing. Such a report, signed, passing and made for
the current core.yaml, is the compliance sign-off the Stage6 publications
require (``stagectl.services.stage6.compliance``).

Entry: ``run(VerifyThresholdsRequest, *, home) -> VerifyThresholdsResult``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stagectl.config.home import ConfigSource, Home
from stagectl.config.loader import file_sha256, load_baseline, load_core
from stagectl.domain.thresholds import ThresholdCheck, audit_thresholds, summarize
from stagectl.errors import InputError

KIND = "verify-thresholds"
SIGN_OFF = "sign_off"  # the body section naming the signer, when one was named
OPTION = "--signed-off-by"


@dataclass(frozen=True)
class VerifyThresholdsRequest:
    """``-c`` (core.yaml) and ``--baseline``; None: the home's file, else the packaged one.
    ``--signed-off-by``: who signs the compliance; None for a plain audit."""

    config: Path | None = None
    baseline: Path | None = None
    signed_off_by: str | None = None


@dataclass(frozen=True)
class VerifyThresholdsResult:
    checks: tuple[ThresholdCheck, ...]
    config: ConfigSource
    config_sha256: str
    baseline: ConfigSource
    baseline_sha256: str
    signed_off_by: str | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def inputs(self) -> list[Path]:
        """core.yaml first, then the baseline: the compliance gate relies on this order."""
        return [self.config.path, self.baseline.path]

    def body(self) -> dict[str, Any]:
        """The report body: checks, summary, the signer (when named), and which files were
        compared."""
        body: dict[str, Any] = {
            "checks": [c.to_dict() for c in self.checks],
            "summary": summarize(self.checks),
        }
        if self.signed_off_by is not None:
            body[SIGN_OFF] = {"signed_off_by": self.signed_off_by}
        body["config"] = _file_entry(self.config, self.config_sha256)
        body["baseline"] = _file_entry(self.baseline, self.baseline_sha256)
        return body


def run(request: VerifyThresholdsRequest, *, home: Home) -> VerifyThresholdsResult:
    """Load config and baseline and audit them; ConfigError (exit 2) on a bad file,
    InputError (exit 2) on an empty signer's name."""
    signer = _signer(request.signed_off_by)
    core, core_source = load_core(home, request.config)
    approved, baseline_source = load_baseline(home, request.baseline)
    return VerifyThresholdsResult(
        checks=tuple(audit_thresholds(core, approved)),
        config=core_source,
        config_sha256=file_sha256(core_source.path),
        baseline=baseline_source,
        baseline_sha256=file_sha256(baseline_source.path),
        signed_off_by=signer,
    )


def _signer(name: str | None) -> str | None:
    """The signer's name, trimmed; empty or multi-line names are refused (a sign-off must
    name someone, and the name is shown on one line)."""
    if name is None:
        return None
    name = name.strip()
    if not name:
        raise InputError("the signer's name is empty; name who signs the compliance", where=OPTION)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise InputError("the signer's name contains a control character", where=OPTION)
    return name


def _file_entry(source: ConfigSource, sha256: str) -> dict[str, Any]:
    return {"path": str(source.path), "sha256": sha256, "packaged": source.packaged}
