"""The compliance gate (seed 000): governor --apply, market-intel --out and stress-lab
--out publish only with core.yaml's signed compliance report; a dry look needs none."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stagectl.config.loader import file_sha256
from stagectl.reports import load_signing_key
from tests.cli.conftest import SIGNER
from tests.conftest import Run
from tests.unit.test_signing import signed_partially

CALM = "2026-05-01T12:00Z"  # bundled data: no baseline breach, so stress-lab exits 0
STRESS = ["stress-lab", "--scenario", "blackout", "--now", CALM]
PUBLICATIONS = {
    "governor": ["governor", "--apply", "--json"],
    "market-intel": ["market-intel", "--out", "published.json"],
    "stress-lab": [*STRESS, "--out", "published.json"],
}
REFUSED_AS = {
    "governor": "governor --apply refused",
    "market-intel": "market-intel --out refused",
    "stress-lab": "stress-lab --out refused",
}
SIGN_OFF_COMMAND = re.compile(
    r"run: stagectl verify-thresholds --out reports/compliance-\d{4}-\d\d-\d\d\.json "
    r"--signed-off-by NAME$"
)


@pytest.fixture
def core(run: Run, home: Path) -> Path:
    """An initialised home (state database, config/core.yaml); returns core.yaml."""
    assert run(["init"]).exit_code == 0
    return home / "config" / "core.yaml"


def _refused(run: Run, home: Path, command: str, core: Path) -> str:
    """Run the publication; assert it was refused and published nothing; its stderr line."""
    result = run(PUBLICATIONS[command])
    assert result.exit_code == 1, result.stderr
    assert result.stdout == ""
    assert not (home / "published.json").exists()
    [line] = result.stderr.strip().splitlines()
    sha = file_sha256(core)[:12]
    assert line.startswith(f"stagectl: {core}: {REFUSED_AS[command]}: core.yaml sha256 {sha} ")
    assert SIGN_OFF_COMMAND.search(line), line
    return line


def _sign_off(run: Run, path: Path, *extra: str) -> Path:
    result = run(["verify-thresholds", "--out", path, *extra])
    assert result.exit_code in (0, 1), result.stderr
    return path


def _edit(path: Path, change: dict[str, object]) -> None:
    report = json.loads(path.read_text())
    report["body"]["sign_off"].update(change)
    path.write_text(json.dumps(report))


@pytest.mark.parametrize("command", PUBLICATIONS)
def test_without_a_report_publication_is_refused_naming_the_sign_off_command(
    run: Run, home: Path, core: Path, hmac_key: str, command: str
) -> None:
    line = _refused(run, home, command, core)
    assert "has no compliance sign-off;" in line


@pytest.mark.parametrize("command", PUBLICATIONS)
def test_a_report_for_another_core_yaml_is_refused(
    run: Run, home: Path, core: Path, signed_off: Path, command: str
) -> None:
    before = file_sha256(core)
    core.write_text(core.read_text() + "# edited after the sign-off\n")
    line = _refused(run, home, command, core)
    assert f"reports/{signed_off.name} was made for core.yaml sha256 {before[:12]}" in line


@pytest.mark.parametrize("command", PUBLICATIONS)
def test_a_tampered_report_is_refused(
    run: Run, home: Path, core: Path, signed_off: Path, command: str
) -> None:
    _edit(signed_off, {"signed_off_by": "Mallory"})
    line = _refused(run, home, command, core)
    assert "does not verify: signature mismatch" in line


def test_a_report_re_pointed_at_the_new_core_yaml_is_refused(
    run: Run, home: Path, core: Path, signed_off: Path
) -> None:
    core.write_text(core.read_text() + "# edited after the sign-off\n")
    report = json.loads(signed_off.read_text())
    report["inputs"][0]["sha256"] = file_sha256(core)
    signed_off.write_text(json.dumps(report))
    assert "does not verify: signature mismatch" in _refused(run, home, "market-intel", core)


def test_an_unsigned_report_is_refused(
    run: Run, home: Path, core: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sign_off(run, home / "reports" / "c.json", "--unsigned", "--signed-off-by", SIGNER)
    monkeypatch.setenv("STAGECTL_HMAC_KEY", "test-signing-key-0123456789abcdef")
    line = _refused(run, home, "governor", core)
    assert "reports/c.json does not verify: the report is unsigned" in line


def test_a_sign_off_signed_by_the_old_partial_scheme_is_refused(
    run: Run, home: Path, core: Path, signed_off: Path, hmac_key: str
) -> None:
    """Its checks, summary and sign_off were signed, but not the rest of it."""
    key = load_signing_key()
    assert key is not None
    current = json.loads(signed_off.read_text())
    old = signed_partially(current, key, ["checks", "summary", "sign_off"])
    signed_off.write_text(json.dumps(old, indent=2))
    line = _refused(run, home, "governor", core)
    assert f"reports/{signed_off.name} does not verify: signed with the old partial scheme" in line


def test_a_report_signed_with_another_key_is_refused(
    run: Run, home: Path, core: Path, signed_off: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGECTL_HMAC_KEY", "another-signing-key-0123456789abcdef")
    assert "does not verify: signed with key id" in _refused(run, home, "market-intel", core)


def test_a_report_without_a_signer_is_refused(
    run: Run, home: Path, core: Path, hmac_key: str
) -> None:
    _sign_off(run, home / "reports" / "c.json")
    line = _refused(run, home, "stress-lab", core)
    assert "reports/c.json names no signer (written without --signed-off-by)" in line


def test_a_failed_verification_is_refused(run: Run, home: Path, core: Path, hmac_key: str) -> None:
    core.write_text(core.read_text().replace("spread_bps: 45", "spread_bps: 60"))
    _sign_off(run, home / "reports" / "c.json", "--signed-off-by", SIGNER)
    line = _refused(run, home, "governor", core)
    assert "reports/c.json records failed threshold checks" in line


def test_a_pass_against_another_baseline_is_refused(
    run: Run, home: Path, core: Path, hmac_key: str
) -> None:
    changed = core.read_text().replace("spread_bps: 45", "spread_bps: 60")
    core.write_text(changed)
    approved = home / "config" / "baselines" / "stage6-2024-06-07.yaml"
    lenient = home / "lenient-baseline.yaml"
    lenient.write_text(approved.read_text().replace("spread_bps: 45", "spread_bps: 60"))
    _sign_off(run, home / "reports" / "c.json", "--baseline", lenient, "--signed-off-by", SIGNER)
    line = _refused(run, home, "market-intel", core)
    assert "reports/c.json audited baseline sha256" in line
    assert "not the home's approved baseline" in line


def test_without_a_key_publication_is_refused_saying_how_to_set_one(
    run: Run, home: Path, core: Path
) -> None:
    line = _refused(run, home, "governor", core)
    assert "(no signing key to verify one: set STAGECTL_HMAC_KEY or STAGECTL_HMAC_KEY_FILE)" in line


def test_governor_apply_with_a_sign_off_applies_and_cites_it(
    run: Run, core: Path, signed_off: Path
) -> None:
    result = run(PUBLICATIONS["governor"])
    assert result.exit_code == 0, result.stderr
    body = result.json()
    assert body["action"] == "apply"
    assert body["compliance"]["signed_off_by"] == SIGNER
    assert body["compliance"]["report"] == str(signed_off)
    assert body["compliance"]["config_sha256"] == file_sha256(core)
    assert f"signed off by {SIGNER}" in result.stderr


def test_market_intel_out_with_a_sign_off_publishes_a_signed_report_citing_it(
    run: Run, home: Path, core: Path, signed_off: Path
) -> None:
    result = run(PUBLICATIONS["market-intel"])
    assert result.exit_code == 0, result.stderr
    assert run(["report", "verify", "published.json"]).exit_code == 0
    report = json.loads((home / "published.json").read_text())
    assert report["kind"] == "market-intel"
    assert {"as_of", "mandatory_symbols", "rows", "compliance"} <= set(report["body"])
    assert report["body"]["compliance"]["signed_off_by"] == SIGNER
    assert report["inputs"][:2] == [
        {"path": str(core), "sha256": file_sha256(core)},
        {"path": str(signed_off), "sha256": file_sha256(signed_off)},
    ]


def test_stress_lab_out_with_a_sign_off_publishes_and_signs_the_sign_off(
    run: Run, home: Path, core: Path, signed_off: Path
) -> None:
    result = run([*PUBLICATIONS["stress-lab"], "--html", "published.html"])
    assert result.exit_code == 0, result.stderr
    assert run(["report", "verify", "published.json"]).exit_code == 0
    report = json.loads((home / "published.json").read_text())
    compliance = report["body"]["verdict"]["compliance"]
    assert compliance["signed_off_by"] == SIGNER
    assert compliance["report_sha256"] == file_sha256(signed_off)
    assert str(signed_off) in [i["path"] for i in report["inputs"]]
    assert (home / "published.html").is_file()


def test_stress_lab_html_alone_is_a_publication(
    run: Run, home: Path, core: Path, hmac_key: str
) -> None:
    result = run([*STRESS, "--html", "r.html"])
    assert result.exit_code == 1
    assert "stress-lab --html refused" in result.stderr
    assert not (home / "r.html").exists()


def test_the_newest_qualifying_report_wins(
    run: Run, home: Path, core: Path, signed_off: Path
) -> None:
    _sign_off(run, home / "reports" / "later.json", "--signed-off-by", "Grace Hopper")
    _sign_off(run, home / "reports" / "latest-unsigned-by.json")
    body = run(PUBLICATIONS["governor"]).json()
    assert body["compliance"]["signed_off_by"] == "Grace Hopper"


def test_a_sign_off_written_outside_reports_is_found_through_the_state_register(
    run: Run, home: Path, core: Path, hmac_key: str
) -> None:
    elsewhere = home / "archive" / "compliance.json"
    _sign_off(run, elsewhere, "--signed-off-by", SIGNER)
    body = run(PUBLICATIONS["governor"]).json()
    assert body["compliance"]["report"] == str(elsewhere)


def test_outside_the_home_the_command_names_the_home_and_an_absolute_path(
    run: Run,
    home: Path,
    core: Path,
    hmac_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(PUBLICATIONS["market-intel"])
    assert result.exit_code == 1
    assert (
        f"run: stagectl --home {home} verify-thresholds --out {home}/reports/compliance-"
        in result.stderr
    )


def test_another_config_file_is_named_with_c_in_the_command(
    run: Run, home: Path, core: Path, hmac_key: str
) -> None:
    other = home / "desk.yaml"
    other.write_text(core.read_text())
    result = run(["market-intel", "-c", other, "--out", "published.json"])
    assert result.exit_code == 1
    assert f"verify-thresholds -c {other} --out reports/compliance-" in result.stderr
    # and that command's report is the sign-off for it
    _sign_off(run, home / "reports" / "desk.json", "-c", other, "--signed-off-by", SIGNER)
    assert run(["market-intel", "-c", other, "--out", "published.json"]).exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["governor"],
        ["market-intel", "--json"],
        [*STRESS, "--json"],
    ],
)
def test_a_dry_look_runs_without_a_sign_off_and_says_so_on_stderr(
    run: Run, home: Path, core: Path, hmac_key: str, args: list[str]
) -> None:
    result = run(args)
    assert result.exit_code == 0, result.stderr
    sha = file_sha256(core)[:12]
    assert f"compliance: core.yaml sha256 {sha} has no compliance sign-off" in result.stderr
    assert "a dry look, nothing is published" in result.stderr
    assert result.stdout
    assert list((home / "reports").iterdir()) == []


def test_a_dry_look_stress_report_signs_that_it_had_no_sign_off(
    run: Run, core: Path, hmac_key: str
) -> None:
    envelope = run([*STRESS, "--json"]).json()
    assert envelope["signature"] is not None
    assert envelope["body"]["verdict"]["compliance"] is None


def test_a_broken_report_in_reports_does_not_break_the_gate(
    run: Run, home: Path, core: Path, signed_off: Path
) -> None:
    (home / "reports" / "broken.json").write_text('{"kind": "verify-thresholds", ')
    assert run(PUBLICATIONS["market-intel"]).exit_code == 0
