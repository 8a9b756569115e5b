"""`stagectl report verify`: every exit path, human and --json output."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stagectl.reports import (
    build_envelope,
    derive_key_id,
    load_signing_key,
    report_bytes,
    sign_envelope,
    write_atomic,
)
from tests.conftest import Run
from tests.unit.test_signing import partial_scheme_report

NOW = datetime(2024, 6, 7, 12, 30, tzinfo=UTC)
BODY = {"thresholds": {"spread_bps": 45.0, "latency_ms": 150}, "notes": "ok"}


def write_report(path: Path, *, signed: bool = True, now: datetime = NOW) -> dict[str, Any]:
    envelope = build_envelope("verify-thresholds", BODY, inputs=[], now=now)
    if signed:
        key = load_signing_key()
        assert key is not None
        envelope = sign_envelope(envelope, key)
    write_atomic(path, report_bytes(envelope))
    return envelope


@pytest.fixture
def report(home: Path, hmac_key: str) -> Path:
    path = home / "reports" / "thresholds.json"
    write_report(path)
    return path


def tamper(path: Path) -> None:
    document = json.loads(path.read_text())
    document["body"]["notes"] = "edited after signing"
    path.write_text(json.dumps(document, indent=2))


def test_a_valid_report_exits_0_and_names_kind_time_and_key_id(
    run: Run, report: Path, hmac_key: str
) -> None:
    result = run(["report", "verify", report])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"file:          {report}",
        "kind:          verify-thresholds",
        "generated_at:  2024-06-07T12:30:00Z",
        f"key_id:        {derive_key_id(hmac_key.encode())}",
        "verdict:       VALID",
    ]
    assert hmac_key not in result.stdout + result.stderr


def test_json_prints_one_document_for_a_valid_report(run: Run, report: Path, hmac_key: str) -> None:
    result = run(["report", "verify", report, "--json"])
    assert result.exit_code == 0
    assert result.json() == {
        "file": str(report),
        "valid": True,
        "reason": "signature valid",
        "schema": "stagectl.report/v2",
        "kind": "verify-thresholds",
        "generated_at": "2024-06-07T12:30:00Z",
        "key_id": derive_key_id(hmac_key.encode()),
    }
    assert result.stderr == ""


def test_reformatting_the_file_keeps_it_valid(run: Run, report: Path) -> None:
    document = json.loads(report.read_text())
    report.write_text(json.dumps(document, separators=(",", ":"), sort_keys=True))
    assert run(["report", "verify", report]).exit_code == 0


def test_a_tampered_report_exits_1(run: Run, report: Path) -> None:
    tamper(report)
    result = run(["report", "verify", report, "--json"])
    assert result.exit_code == 1
    document = result.json()
    assert document["valid"] is False
    assert document["reason"].startswith("signature mismatch")


def test_a_tampered_report_says_invalid_in_human_output(run: Run, report: Path) -> None:
    tamper(report)
    result = run(["report", "verify", report])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1].startswith("verdict:       INVALID: signature mismatch")


def test_the_wrong_key_exits_1_naming_both_key_ids(run: Run, report: Path, hmac_key: str) -> None:
    other = "a-different-signing-key-for-tests"
    result = run(["report", "verify", report, "--json"], env={"STAGECTL_HMAC_KEY": other})
    assert result.exit_code == 1
    reason = result.json()["reason"]
    assert derive_key_id(hmac_key.encode()) in reason
    assert derive_key_id(other.encode()) in reason
    assert other not in result.stdout + result.stderr


def test_an_unsigned_report_exits_1_without_needing_a_key(run: Run, home: Path) -> None:
    path = home / "unsigned.json"
    write_report(path, signed=False)
    result = run(["report", "verify", path, "--json"])
    assert result.exit_code == 1
    assert result.json()["reason"] == "the report is unsigned (signature is null)"


def test_a_missing_file_exits_2_naming_it(run: Run, home: Path, hmac_key: str) -> None:
    result = run(["report", "verify", "nope.json", "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == "stagectl: nope.json: cannot read report: No such file or directory\n"


def test_a_directory_exits_2(run: Run, home: Path, hmac_key: str) -> None:
    result = run(["report", "verify", home])
    assert result.exit_code == 2
    assert "cannot read report" in result.stderr


def test_a_file_that_is_not_json_exits_2_with_its_line(run: Run, home: Path, hmac_key: str) -> None:
    (home / "bad.json").write_text('{\n  "schema": \n')
    result = run(["report", "verify", "bad.json", "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("stagectl: bad.json:3: not a JSON report:")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "the top level is not an object"),
        ('{"a": 1}', "no 'schema' field"),
        ('{"schema": "other/v9"}', "unsupported report schema 'other/v9'"),
        ('{"schema": "stagectl.report/v1", "kind": 1}', "'kind' is missing or has the wrong"),
        ('{"a": NaN}', "NaN is not valid JSON"),
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ],
)
def test_a_json_file_that_is_not_a_report_exits_2(
    run: Run, home: Path, hmac_key: str, content: str, message: str
) -> None:
    (home / "other.json").write_text(content)
    result = run(["report", "verify", "other.json"])
    assert result.exit_code == 2
    assert message in result.stderr


def test_no_key_exits_2_saying_how_to_configure_one(run: Run, report: Path) -> None:
    result = run(["report", "verify", report, "--json"], env={"STAGECTL_HMAC_KEY": None})
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(
        "stagectl: no signing key: set STAGECTL_HMAC_KEY or STAGECTL_HMAC_KEY_FILE (chmod 600)"
    )


def test_an_unsafe_key_file_exits_2_with_the_chmod_hint(
    run: Run, report: Path, home: Path, hmac_key: str
) -> None:
    key_file = home / "hmac.key"
    key_file.write_text(hmac_key + "\n")
    key_file.chmod(0o644)
    env = {"STAGECTL_HMAC_KEY": None, "STAGECTL_HMAC_KEY_FILE": str(key_file)}
    result = run(["report", "verify", report], env=env)
    assert result.exit_code == 2
    assert f"chmod 600 {key_file}" in result.stderr
    assert hmac_key not in result.stdout + result.stderr
    key_file.chmod(0o600)
    assert run(["report", "verify", report], env=env).exit_code == 0


def test_a_report_of_the_old_partial_scheme_exits_1_saying_to_regenerate_it(
    run: Run, home: Path, hmac_key: str
) -> None:
    key = load_signing_key()
    assert key is not None
    path = home / "old.json"
    write_atomic(path, report_bytes(partial_scheme_report(key)))
    result = run(["report", "verify", path, "--json"])
    assert result.exit_code == 1
    document = result.json()
    assert document["schema"] == "stagectl.report/v1"
    assert document["key_id"] == key.key_id
    assert document["reason"].startswith("signed with the old partial scheme")
    assert document["reason"].endswith("; re-generate the report")
    assert run(["report", "verify", path], env={"STAGECTL_HMAC_KEY": None}).exit_code == 1


def test_max_age_fails_an_older_report_with_exit_1_and_says_why(
    run: Run, home: Path, hmac_key: str
) -> None:
    path = home / "aged.json"
    envelope = write_report(path, now=datetime.now(UTC) - timedelta(hours=2))
    assert run(["report", "verify", path, "--max-age", "3h"]).exit_code == 0
    result = run(["report", "verify", path, "--max-age", "90m", "--json"])
    assert result.exit_code == 1
    document = result.json()
    assert document["valid"] is False
    assert document["generated_at"] == envelope["generated_at"]
    assert document["reason"].startswith(f"too old: generated {envelope['generated_at']}, 2h")
    assert document["reason"].endswith("more than the maximum age 1h 30m")
    human = run(["report", "verify", path, "--max-age", "1h"])
    assert human.exit_code == 1
    assert human.stdout.splitlines()[-1].startswith("verdict:       INVALID: too old: ")


def test_an_old_report_stays_valid_until_max_age_asks_its_age(run: Run, report: Path) -> None:
    """The fixture's report is from 2024: valid forever unless --max-age says otherwise."""
    assert run(["report", "verify", report]).exit_code == 0
    assert run(["report", "verify", report, "--max-age", "52w"]).exit_code == 1


def test_max_age_fails_a_report_stamped_further_ahead_than_it(
    run: Run, home: Path, hmac_key: str
) -> None:
    path = home / "ahead.json"
    write_report(path, now=datetime.now(UTC) + timedelta(days=2))
    result = run(["report", "verify", path, "--max-age", "1d", "--json"])
    assert result.exit_code == 1
    assert result.json()["reason"].startswith("from the future: generated ")


@pytest.mark.parametrize("value", ["soon", "0h", "-1d", "200y"])
def test_a_bad_max_age_exits_2_naming_the_option(run: Run, report: Path, value: str) -> None:
    result = run(["report", "verify", report, "--max-age", value])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("stagectl: --max-age: ")


def test_verify_help_shows_an_example(run: Run) -> None:
    result = run(["report", "verify", "--help"])
    assert result.exit_code == 0
    assert "Example: " in result.stdout
