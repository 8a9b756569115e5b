"""`stagectl verify-thresholds`: exit codes 0/1/2, --json, --out, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stagectl.config.loader import file_sha256
from tests.conftest import REPO_ROOT, Run

CORE_TEXT = (REPO_ROOT / "config" / "core.yaml").read_text(encoding="utf-8")
BASELINE_FILE = REPO_ROOT / "config" / "baselines" / "stage6-2024-06-07.yaml"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_packaged_config_passes_with_exit_0(run: Run) -> None:
    result = run(["verify-thresholds"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "PASS: 52 of 52 checks passed, 0 failed"
    assert "(packaged default)" in result.stderr


def test_json_prints_one_envelope_with_checks_summary_and_inputs(run: Run) -> None:
    result = run(["verify-thresholds", "--json"])
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["kind"] == "verify-thresholds"
    body = document["body"]
    assert body["summary"] == {"total": 52, "passed": 52, "failed": 0}
    assert set(body["checks"][0]) == {"id", "expected", "actual", "status", "message"}
    assert body["baseline"]["sha256"] == file_sha256(BASELINE_FILE)
    assert body["config"]["path"].endswith("core.yaml")


def test_a_changed_value_exits_1_and_lists_the_failure_first(run: Run, home: Path) -> None:
    _write(home / "config" / "core.yaml", CORE_TEXT.replace("spread_bps: 45", "spread_bps: 60"))
    result = run(["verify-thresholds"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[2].startswith("FAIL    stress_lab.thresholds.spread_bps")
    assert lines[-1] == "FAIL: 51 of 52 checks passed, 1 failed"
    assert f"config: {home / 'config' / 'core.yaml'}" in result.stderr


def test_json_with_a_failure_still_prints_one_document_and_exits_1(run: Run, home: Path) -> None:
    core = _write(home / "elsewhere.yaml", CORE_TEXT.replace("latency_ms: 180", "latency_ms: 140"))
    result = run(["verify-thresholds", "-c", core, "--json"])
    assert result.exit_code == 1
    body = result.json()["body"]
    failed = {c["id"] for c in body["checks"] if c["status"] == "fail"}
    assert failed == {
        "stress_lab.scenarios.blackout.overrides.latency_ms",
        "invariant.blackout_overrides.latency_ms",
    }
    assert body["config"] == {
        "path": str(core),
        "sha256": file_sha256(core),
        "packaged": False,
    }


def test_json_is_signed_when_a_key_is_configured(run: Run, hmac_key: str) -> None:
    result = run(["verify-thresholds", "--json"])
    assert result.exit_code == 0
    signature = result.json()["signature"]
    assert signature["alg"] == "HMAC-SHA256"
    assert sorted(signature) == ["alg", "key_id", "value"]


def test_out_writes_a_report_that_report_verify_accepts(
    run: Run, home: Path, hmac_key: str
) -> None:
    out = home / "reports" / "thresholds.json"
    result = run(["verify-thresholds", "--out", out])
    assert result.exit_code == 0
    assert json.loads(out.read_text())["body"]["summary"]["failed"] == 0
    assert run(["report", "verify", out]).exit_code == 0


def test_out_without_a_key_is_refused_unless_unsigned(run: Run, home: Path) -> None:
    out = home / "reports" / "thresholds.json"
    refused = run(["verify-thresholds", "--out", out])
    assert refused.exit_code == 2
    assert "STAGECTL_HMAC_KEY" in refused.stderr
    assert not out.exists()
    written = run(["verify-thresholds", "--out", out, "--unsigned"])
    assert written.exit_code == 0
    assert json.loads(out.read_text())["signature"] is None


def test_a_missing_config_file_is_a_one_line_error(run: Run, home: Path) -> None:
    result = run(["verify-thresholds", "-c", home / "missing.yaml", "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        f"stagectl: {home / 'missing.yaml'}: config file not found; "
        "pass an existing file with -c, or run 'stagectl init'"
    )
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("default_weight: 1.15", "default_weight: heavy"), "market_intel.default_weight: "),
        (("  min_score: 0.08", "  min_score: 0.08\n  max_score: 1"), "unknown key"),
        (("smoothing: 0.55", "smoothing: [0.55"), "YAML syntax error"),
    ],
)
def test_a_bad_baseline_is_a_one_line_error_with_file_and_line(
    run: Run, home: Path, edit: tuple[str, str], message: str
) -> None:
    text = BASELINE_FILE.read_text(encoding="utf-8")
    assert edit[0] in text
    bad = _write(home / "bad-baseline.yaml", text.replace(edit[0], edit[1], 1))
    result = run(["verify-thresholds", "--baseline", bad])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"stagectl: {bad}:")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_a_bad_home_config_names_its_line(run: Run, home: Path) -> None:
    _write(home / "config" / "core.yaml", CORE_TEXT.replace("max_signals: 5", "max_signals: five"))
    result = run(["verify-thresholds"])
    line = next(n for n, text in enumerate(CORE_TEXT.splitlines(), 1) if "max_signals: 5" in text)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"stagectl: {home / 'config' / 'core.yaml'}:{line}: "
        "portfolio_governor.strategies.mean_reversion.max_signals: "
        "Input should be a valid integer (got 'five')"
    )


def test_help_shows_an_example(run: Run) -> None:
    result = run(["verify-thresholds", "--help"])
    assert result.exit_code == 0
    assert "Example: stagectl verify-thresholds" in result.stdout


def test_json_run_stays_off_heavy_imports(home: Path) -> None:
    script = (
        "import sys\n"
        "from stagectl.cli.main import main\n"
        "code = main(['verify-thresholds', '--json'])\n"
        "heavy = [m for m in ('pandas', 'numpy', 'ccxt', 'sqlite_utils', 'rich')"
        " if m in sys.modules]\n"
        "sys.stderr.write(f'heavy={heavy} code={code}\\n')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=home
    )
    assert "heavy=[] code=0" in result.stderr
    json.loads(result.stdout)


def test_after_init_the_home_copies_are_used_and_pass(run: Run, home: Path) -> None:
    assert run(["init"]).exit_code == 0
    result = run(["verify-thresholds", "--json"])
    assert result.exit_code == 0
    body = result.json()["body"]
    assert body["config"]["path"] == str(home / "config" / "core.yaml")
    assert body["baseline"]["packaged"] is False


def test_signed_off_by_names_the_signer_in_a_signed_section(
    run: Run, home: Path, hmac_key: str
) -> None:
    out = home / "reports" / "compliance.json"
    result = run(["verify-thresholds", "--out", out, "--signed-off-by", "  Ada Lovelace "])
    assert result.exit_code == 0, result.stderr
    assert "signed off by: Ada Lovelace" in result.stdout
    assert "compliance sign-off for core.yaml sha256" in result.stderr
    report = json.loads(out.read_text())
    assert report["body"]["sign_off"] == {"signed_off_by": "Ada Lovelace"}
    assert run(["report", "verify", out]).exit_code == 0
    report["body"]["sign_off"]["signed_off_by"] = "Mallory"
    out.write_text(json.dumps(report))
    assert run(["report", "verify", out]).exit_code == 1


@pytest.mark.parametrize("name", ["", "   ", "Ada\nLovelace"])
def test_an_empty_or_multi_line_signer_is_refused_and_nothing_is_written(
    run: Run, home: Path, hmac_key: str, name: str
) -> None:
    out = home / "reports" / "compliance.json"
    result = run(["verify-thresholds", "--out", out, "--signed-off-by", name])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("stagectl: --signed-off-by: the signer's name")
    assert not out.exists()


def test_a_failed_audit_with_a_signer_says_it_is_no_sign_off(
    run: Run, home: Path, hmac_key: str
) -> None:
    _write(home / "config" / "core.yaml", CORE_TEXT.replace("spread_bps: 45", "spread_bps: 60"))
    result = run(["verify-thresholds", "--out", "r.json", "--signed-off-by", "Ada"])
    assert result.exit_code == 1
    assert "not a compliance sign-off: 1 of 52 checks failed" in result.stderr
