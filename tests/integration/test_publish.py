"""publish_report: the one report path (envelope -> sign -> atomic write -> record in state)."""

from __future__ import annotations

import hashlib
import math
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stagectl.config.home import Home
from stagectl.errors import InputError, SigningKeyError
from stagectl.reports import load_signing_key, read_report, verify_envelope
from stagectl.services.publish import publish_report

NOW = datetime(2024, 6, 7, 12, 30, tzinfo=UTC)
BODY = {"scenarios": {"blackout": {"latency_ms": 180, "blackout_min": 55}}, "notes": "draft"}


def publish(
    home: Path, out: Path | None, *, unsigned: bool = False, **kwargs: Any
) -> dict[str, Any]:
    return publish_report(
        "stress-lab",
        kwargs.pop("body", BODY),
        inputs=kwargs.pop("inputs", []),
        out=out,
        unsigned=unsigned,
        home=Home.resolve(home),
        now=NOW,
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_a_signed_report_is_written_and_verifies(home: Path, hmac_key: str) -> None:
    out = home / "reports" / "stress-lab.json"
    envelope = publish(home, out)
    assert read_report(out) == envelope
    key = load_signing_key()
    assert key is not None
    assert verify_envelope(read_report(out), key).valid
    assert out.read_text().startswith('{\n  "schema": "stagectl.report/v2",\n')
    assert leftovers(out.parent) == []


def test_inputs_are_hashed_into_the_signed_report(home: Path, hmac_key: str) -> None:
    config = home / "core.yaml"
    config.write_text("stress_lab:\n  spread_bps: 45\n")
    envelope = publish(home, home / "r.json", inputs=[config])
    assert envelope["inputs"] == [
        {"path": str(config), "sha256": hashlib.sha256(config.read_bytes()).hexdigest()}
    ]


def test_rewriting_a_report_replaces_it_whole(home: Path, hmac_key: str) -> None:
    out = home / "r.json"
    out.write_text("old contents that are longer than nothing")
    out.chmod(0o640)
    publish(home, out)
    assert read_report(out)["kind"] == "stress-lab"
    assert out.stat().st_mode & 0o777 == 0o640
    assert leftovers(home) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(home: Path, hmac_key: str) -> None:
    out = home / "r.json"
    out.write_text("previous report")
    with pytest.raises(ValueError, match="NaN"):
        publish(home, out, body={"scenarios": {"pnl": math.nan}})
    assert out.read_text() == "previous report"
    assert leftovers(home) == []


def test_writing_onto_a_directory_is_an_input_error_and_leaves_nothing(
    home: Path, hmac_key: str
) -> None:
    out = home / "taken"
    out.mkdir()
    with pytest.raises(InputError) as caught:
        publish(home, out)
    assert caught.value.where == str(out)
    assert caught.value.exit_code == 2
    assert leftovers(home) == []


def test_no_key_with_out_is_a_signing_key_error_and_writes_nothing(home: Path) -> None:
    out = home / "r.json"
    with pytest.raises(SigningKeyError) as caught:
        publish(home, out)
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        "no signing key: set STAGECTL_HMAC_KEY or STAGECTL_HMAC_KEY_FILE (chmod 600), "
        "or pass --unsigned"
    )
    assert not out.exists()


def test_unsigned_writes_a_report_with_a_null_signature_and_warns(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = home / "r.json"
    envelope = publish(home, out, unsigned=True)
    assert envelope["signature"] is None
    assert read_report(out)["signature"] is None
    assert "UNSIGNED" in capsys.readouterr().err


def test_unsigned_still_signs_when_a_key_is_configured(home: Path, hmac_key: str) -> None:
    assert publish(home, home / "r.json", unsigned=True)["signature"] is not None


def test_without_out_the_envelope_is_returned_and_nothing_is_written(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish(home, None)["signature"] is None
    assert list(home.iterdir()) == []
    assert capsys.readouterr().err == ""


def test_without_out_a_configured_key_signs_the_envelope(home: Path, hmac_key: str) -> None:
    key = load_signing_key()
    assert key is not None
    assert publish(home, None)["signature"]["key_id"] == key.key_id


def test_no_state_database_still_writes_the_report_and_warns(
    home: Path, hmac_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = home / "r.json"
    publish(home, out)
    assert out.is_file()
    assert not (home / "state").exists()
    err = capsys.readouterr().err
    assert "not recorded in state" in err
    assert len(err.strip().splitlines()) == 1


def test_a_state_database_without_the_schema_still_writes_the_report(
    home: Path, hmac_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    state = home / "state" / "stagectl.db"
    state.parent.mkdir()
    sqlite3.connect(state).close()
    out = home / "r.json"
    publish(home, out)
    assert out.is_file()
    assert "not recorded in state" in capsys.readouterr().err


def test_a_written_report_is_recorded_in_state(
    home: Path, hmac_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("stagectl.state.reports")
    from stagectl.state.db import open_state

    state = Home.resolve(home).state_path
    open_state(state).close()
    out = home / "reports" / "r.json"
    publish(home, out)
    assert "not recorded" not in capsys.readouterr().err
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    key = load_signing_key()
    assert key is not None
    with sqlite3.connect(state) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(row) for row in conn.execute("SELECT * FROM reports")]
    assert len(rows) == 1
    values = set(rows[0].values())
    assert {"stress-lab", str(out.resolve()), digest, key.key_id, "2024-06-07T12:30:00Z"} <= values


def test_publishing_imports_no_heavy_modules() -> None:
    code = (
        "import sys, stagectl.services.publish\n"
        "heavy = {'pandas', 'numpy', 'sqlite_utils', 'rich', 'ccxt'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


def test_an_unsigned_report_is_recorded_as_unsigned(home: Path) -> None:
    pytest.importorskip("stagectl.state.reports")
    from stagectl.state.db import open_state
    from stagectl.state.reports import list_reports

    state = Home.resolve(home).state_path
    open_state(state).close()
    publish(home, home / "r.json", unsigned=True)
    with open_state(state, migrate=False) as db:
        records = list_reports(db)
    assert [(r.kind, r.signed, r.key_id) for r in records] == [("stress-lab", False, None)]
