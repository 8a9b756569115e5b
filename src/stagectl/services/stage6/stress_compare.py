"""``stress-lab --compare``: what changed since an earlier stress-lab report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stagectl.config.loader import file_sha256
from stagectl.errors import InputError
from stagectl.services.stage6.stress_verdict import BASELINE_KEY, KIND


def compare_reports(path: Path, body: dict[str, Any]) -> dict[str, Any]:
    """What changed since an earlier stress-lab report: breaches added/removed and metric
    deltas in the scenarios both reports ran, and the scenarios only one of them ran."""
    from stagectl.reports import read_report

    previous = read_report(path)
    if previous.get("kind") != KIND:
        raise InputError(
            f"not a stress-lab report (kind {previous.get('kind')!r})", where=str(path)
        )
    try:
        old = {s["name"]: s for s in _rows(previous["body"])}
        old_breaches = {(n, c["metric"]) for n, s in old.items() for c in s["breaches"]}
    except (KeyError, TypeError):
        raise InputError("malformed stress-lab report body", where=str(path)) from None
    new = {s["name"]: s for s in _rows(body)}
    new_breaches = {(n, c["metric"]) for n, s in new.items() for c in s["breaches"]}
    both = new.keys() & old.keys()
    old_breaches = {pair for pair in old_breaches if pair[0] in both}
    new_breaches = {pair for pair in new_breaches if pair[0] in both}
    deltas: dict[str, dict[str, Any]] = {}
    for name in sorted(both):
        before = {c["metric"]: c.get("value") for c in old[name].get("checks", [])}
        for check in new[name]["checks"]:
            was, now_value = before.get(check["metric"]), check["value"]
            if isinstance(was, int | float) and isinstance(now_value, int | float):
                deltas.setdefault(name, {})[check["metric"]] = {
                    "previous": was,
                    "current": now_value,
                    "delta": now_value - was,
                }

    def listed(pairs: set[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"scenario": s, "metric": m} for s, m in sorted(pairs)]

    return {
        "previous": {
            "path": str(path),
            "generated_at": previous.get("generated_at"),
            "sha256": file_sha256(path),
        },
        "breaches_added": listed(new_breaches - old_breaches),
        "breaches_removed": listed(old_breaches - new_breaches),
        "scenarios_added": sorted(new.keys() - old.keys()),
        "scenarios_removed": sorted(old.keys() - new.keys()),
        "metric_deltas": deltas,
    }


def _rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The baseline row (absent from reports made before it existed), then the scenarios."""
    baseline = body.get(BASELINE_KEY)
    return [*([baseline] if baseline else []), *body["scenarios"]]
