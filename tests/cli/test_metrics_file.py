"""`--metrics-file` on the scheduled commands: a Prometheus textfile, parsed with
prometheus-client's own parser, written on every exit path (docs/metrics.md)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import typer
from prometheus_client.parser import text_string_to_metric_families

from stagectl.cli._observe import observed
from stagectl.config.home import Home
from stagectl.domain.risk_indicators import PORTFOLIO_INDICATORS, SLEEVE_INDICATORS
from stagectl.errors import Interrupted
from tests.cli.test_startup_imports import imported_modules
from tests.conftest import REPO_ROOT, Run
from tests.integration.test_risk_guard_live import HOURS, _seed, at_hour

Samples = dict[str, list[tuple[dict[str, str], float]]]
ALL_INDICATORS = (*PORTFOLIO_INDICATORS, *SLEEVE_INDICATORS)


def samples(path: Path) -> Samples:
    """Every sample of the textfile, by metric name."""
    found: Samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels``."""
    matching = [v for got, v in found[name] if labels.items() <= got.items()]
    assert len(matching) == 1, (name, labels, found.get(name))
    return matching[0]


@pytest.fixture
def initialised(run: Run, home: Path) -> Path:
    assert run(["init", home]).exit_code == 0
    return home


def test_verify_thresholds_writes_its_checks_and_exit_code(run: Run, initialised: Path) -> None:
    path = initialised / "textfile" / "verify.prom"
    path.parent.mkdir()
    result = run(["verify-thresholds", "--metrics-file", path])
    assert result.exit_code == 0, result.stderr
    found = samples(path)
    labels = {"command": "verify-thresholds"}
    assert value(found, "stagectl_command_exit_code", **labels) == 0
    assert value(found, "stagectl_checks_failed", **labels) == 0
    assert value(found, "stagectl_checks_passed", **labels) > 40
    assert value(found, "stagectl_command_last_run_timestamp_seconds", **labels) > 1.7e9
    assert [p.name for p in path.parent.iterdir()] == ["verify.prom"]  # no temporary left


def test_a_breached_guard_writes_its_decision_and_every_indicator(run: Run, home: Path) -> None:
    _seed(home / "state" / "stagectl.db")
    path = home / "guard.prom"
    result = run(
        ["risk-guard", "--dry-run", "--metrics-file", path, "--now", at_hour(HOURS - 1).isoformat()]
    )
    assert result.exit_code == 1
    found = samples(path)
    mode = {"command": "risk-guard", "mode": "paper"}
    assert value(found, "stagectl_command_exit_code", **mode) == 1
    info = value(found, "stagectl_guard_action_info", action="FLATTEN_ALL", severity="CRITICAL")
    assert info == 1
    assert value(found, "stagectl_guard_severity_level", **mode) == 4
    assert value(found, "stagectl_guard_rules_breached", **mode) == 5
    assert value(found, "stagectl_guard_snapshot_age_seconds", **mode) == pytest.approx(594)
    assert value(found, "stagectl_guard_running_mdd_pct", **mode) == pytest.approx(17.7688849516)
    for name in PORTFOLIO_INDICATORS:  # those without data are left out, not written NaN
        assert all(math.isfinite(v) for _, v in found.get(f"stagectl_guard_{name}", []))
    assert "stagectl_guard_signal_mismatch_pct" not in found  # no signal checks: no value
    for name in SLEEVE_INDICATORS:
        sleeves = {labels["sleeve"] for labels, _ in found[f"stagectl_guard_{name}"]}
        assert sleeves == {"ETHUSDT", "SOLUSDT"}


def test_the_weekly_review_writes_its_rebalance_and_health(run: Run, home: Path) -> None:
    _seed(home / "state" / "stagectl.db")
    path = home / "weekly.prom"
    now = at_hour(HOURS - 1).isoformat()
    args = ["risk-guard", "--weekly", "--dry-run", "--metrics-file", path, "--now", now]
    result = run(args)
    assert result.exit_code == 1
    found = samples(path)
    labels = {"command": "risk-guard --weekly", "mode": "paper"}
    assert value(found, "stagectl_weekly_rebalance_due", **labels) == 1
    assert value(found, "stagectl_checks_failed", **labels) == 2  # two health warnings
    assert value(found, "stagectl_command_exit_code", **labels) == 1


@pytest.mark.parametrize(
    ("args", "command", "code"),
    [
        (["risk-guard", "-c", "missing.yaml"], "risk-guard", 2),
        (["risk-guard", "--weekly", "-c", "missing.yaml"], "risk-guard --weekly", 2),
        (["verify-thresholds", "-c", "missing.yaml"], "verify-thresholds", 2),
        (["paper-gate"], "paper-gate", 2),  # no paper run to judge
        (["preflight", "-c", "missing.yaml"], "preflight", 2),
        (["emergency-close", "--paper", "--exchange", "binanceusdm"], "emergency-close", 2),
        (["risk-guard"], "risk-guard", 3),  # the state database is not one
    ],
)
def test_a_failed_run_writes_its_exit_code(
    run: Run, initialised: Path, args: list[str], command: str, code: int
) -> None:
    if code == 3:
        (initialised / "state" / "stagectl.db").write_text("not a database, and long enough")
    path = initialised / "failed.prom"
    result = run([*args, "--metrics-file", path])
    assert result.exit_code == code
    found = samples(path)
    assert value(found, "stagectl_command_exit_code", command=command) == code
    assert value(found, "stagectl_command_last_run_timestamp_seconds", command=command) > 1.7e9


def test_preflight_writes_passed_failed_and_skipped(run: Run, initialised: Path) -> None:
    path = initialised / "preflight.prom"
    result = run(["preflight", "--metrics-file", path])
    assert result.exit_code == 0, result.stdout
    found = samples(path)
    assert value(found, "stagectl_checks_failed", command="preflight") == 0
    assert value(found, "stagectl_checks_passed", command="preflight") > 0
    assert value(found, "stagectl_checks_skipped", command="preflight") >= 0


def test_emergency_close_writes_whether_the_book_is_flat(run: Run, initialised: Path) -> None:
    path = initialised / "close.prom"
    result = run(["emergency-close", "--paper", "--dry-run", "--metrics-file", path])
    assert result.exit_code == 0, result.stderr
    found = samples(path)
    labels = {"command": "emergency-close", "mode": "paper"}
    assert value(found, "stagectl_emergency_close_flat", **labels) == 1
    assert value(found, "stagectl_emergency_close_residual_positions", **labels) == 0


def test_a_metrics_file_in_a_missing_directory_is_refused(run: Run, initialised: Path) -> None:
    result = run(["verify-thresholds", "--metrics-file", initialised / "nowhere" / "v.prom"])
    assert result.exit_code == 2
    assert "--metrics-file" in result.stderr
    assert not (initialised / "nowhere").exists()


def test_the_replay_refuses_a_metrics_file(run: Run, initialised: Path) -> None:
    result = run(["risk-guard", "--replay", "--metrics-file", initialised / "r.prom"])
    assert result.exit_code == 2
    assert "--metrics-file" in result.stderr
    assert not (initialised / "r.prom").exists()


def test_a_rewrite_replaces_the_whole_file(run: Run, initialised: Path) -> None:
    path = initialised / "vt.prom"
    path.write_text("stale_metric_from_elsewhere 1\n")
    assert run(["verify-thresholds", "--metrics-file", path]).exit_code == 0
    assert "stale_metric_from_elsewhere" not in samples(path)


def test_every_metric_is_documented_with_its_unit() -> None:
    from stagectl.cli._live_metrics import LIVE_METRICS
    from stagectl.cli._metrics import TEXTFILE_METRICS

    documented = (REPO_ROOT / "docs" / "metrics.md").read_text()
    names = [*TEXTFILE_METRICS, *(f"stagectl_guard_{i}" for i in ALL_INDICATORS)]
    names += [
        name + ("_total" if kind == "counter" else "") for name, (kind, *_) in LIVE_METRICS.items()
    ]
    missing = [name for name in names if f"| `{name}` |" not in documented]
    assert missing == []


def test_without_the_option_prometheus_client_is_not_imported(run: Run, initialised: Path) -> None:
    modules = imported_modules(["verify-thresholds", "--json"], initialised)
    assert "prometheus_client" not in modules
    assert (initialised / "logs" / "verify-thresholds.jsonl").is_file()


@pytest.mark.parametrize(
    ("error", "code"),
    [(ZeroDivisionError("a bug"), 70), (Interrupted(15), 130), (typer.Abort(), 130)],
)
def test_a_bug_or_an_interruption_writes_its_exit_code(
    tmp_path: Path, error: BaseException, code: int
) -> None:
    path = tmp_path / "bug.prom"
    with pytest.raises(type(error)), observed(Home(tmp_path), "preflight", metrics_file=path):
        raise error
    assert value(samples(path), "stagectl_command_exit_code", command="preflight") == code
