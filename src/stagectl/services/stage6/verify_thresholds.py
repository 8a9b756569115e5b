"""verify-thresholds: audit core.yaml's governed values against the approved baseline.

Loads both files (each falls back to the packaged default when the home has
none), runs the pure audit in ``stagectl.domain.thresholds`` and returns the
checks with the report body. Publishing (envelope, signature, file) is the
caller's choice through ``stagectl.services.publish``.

Entry: ``run(VerifyThresholdsRequest, *, home) -> VerifyThresholdsResult``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stagectl.config.home import ConfigSource, Home
from stagectl.config.loader import file_sha256, load_baseline, load_core
from stagectl.domain.thresholds import ThresholdCheck, audit_thresholds, summarize

KIND = "verify-thresholds"
SIGNED_SECTIONS = ["checks", "summary"]


@dataclass(frozen=True)
class VerifyThresholdsRequest:
    """``-c`` (core.yaml) and ``--baseline``; None: the home's file, else the packaged one."""

    config: Path | None = None
    baseline: Path | None = None


@dataclass(frozen=True)
class VerifyThresholdsResult:
    checks: tuple[ThresholdCheck, ...]
    config: ConfigSource
    config_sha256: str
    baseline: ConfigSource
    baseline_sha256: str

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def inputs(self) -> list[Path]:
        return [self.config.path, self.baseline.path]

    def body(self) -> dict[str, Any]:
        """The report body: checks, summary, and which files were compared."""
        return {
            "checks": [c.to_dict() for c in self.checks],
            "summary": summarize(self.checks),
            "config": _file_entry(self.config, self.config_sha256),
            "baseline": _file_entry(self.baseline, self.baseline_sha256),
        }


def run(request: VerifyThresholdsRequest, *, home: Home) -> VerifyThresholdsResult:
    """Load config and baseline and audit them; ConfigError (exit 2) on a bad file."""
    core, core_source = load_core(home, request.config)
    approved, baseline_source = load_baseline(home, request.baseline)
    return VerifyThresholdsResult(
        checks=tuple(audit_thresholds(core, approved)),
        config=core_source,
        config_sha256=file_sha256(core_source.path),
        baseline=baseline_source,
        baseline_sha256=file_sha256(baseline_source.path),
    )


def _file_entry(source: ConfigSource, sha256: str) -> dict[str, Any]:
    return {"path": str(source.path), "sha256": sha256, "packaged": source.packaged}
