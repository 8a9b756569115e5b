"""Report signatures: what they cover, what breaks them, and how the key is loaded."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.errors import InputError, SigningKeyError
from stagectl.reports import (
    SigningKey,
    build_envelope,
    derive_key_id,
    load_signing_key,
    read_report,
    report_bytes,
    sign_envelope,
    verify_envelope,
    write_atomic,
)
from tests.unit.test_canonical_json import json_text, json_values

SECRET = b"unit-test-signing-key-0123456789"
KEY = SigningKey(secret=SECRET, key_id=derive_key_id(SECRET))
OTHER = SigningKey(secret=b"another-signing-key-9876543210xx", key_id="other-key")
NOW = datetime(2024, 6, 7, 12, 30, tzinfo=UTC)


def signed(body: dict[str, Any], sections: list[str], key: SigningKey = KEY) -> dict[str, Any]:
    envelope = build_envelope("stress-lab", body, inputs=[], now=NOW, signed_sections=sections)
    return sign_envelope(envelope, key)


def sample() -> dict[str, Any]:
    return signed(
        {"verdict": {"passed": True, "spread_bps": 45.0}, "notes": {"text": "free"}},
        ["verdict"],
    )


def test_the_mac_covers_the_hand_written_canonical_payload() -> None:
    envelope = signed({"verdict": {"spread_bps": 45.0, "passed": True}, "notes": "x"}, ["verdict"])
    payload = (
        b'{"generated_at":"2024-06-07T12:30:00Z","inputs":[],"kind":"stress-lab",'
        b'"schema":"stagectl.report/v1","sections":{"verdict":{"passed":true,"spread_bps":45.0}},'
        b'"stagectl_version":"' + envelope["stagectl_version"].encode() + b'"}'
    )
    expected = hmac.new(SECRET, payload, hashlib.sha256).hexdigest()
    assert envelope["signature"] == {
        "alg": "HMAC-SHA256",
        "key_id": KEY.key_id,
        "sections": ["verdict"],
        "value": expected,
    }


def test_a_signed_report_verifies_with_its_key() -> None:
    result = verify_envelope(sample(), KEY)
    assert (result.valid, result.key_id, result.sections) == (True, KEY.key_id, ["verdict"])


def test_changing_a_signed_value_fails_verification() -> None:
    envelope = sample()
    envelope["body"]["verdict"]["spread_bps"] = 45.000001
    result = verify_envelope(envelope, KEY)
    assert not result.valid
    assert "signature mismatch" in result.reason


def test_changing_an_unsigned_section_keeps_the_signature_valid() -> None:
    envelope = sample()
    envelope["body"]["notes"] = {"text": "rewritten", "extra": [1, 2]}
    assert verify_envelope(envelope, KEY).valid


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "verify-thresholds"),
        ("generated_at", "2024-06-07T12:30:01Z"),
        ("stagectl_version", "9.9.9"),
        ("inputs", [{"path": "config/core.yaml", "sha256": "0" * 64}]),
    ],
)
def test_changing_the_envelope_metadata_fails_verification(field: str, value: Any) -> None:
    envelope = sample()
    envelope[field] = value
    assert not verify_envelope(envelope, KEY).valid


def test_a_wrong_key_id_is_named_in_the_reason() -> None:
    result = verify_envelope(sample(), OTHER)
    assert not result.valid
    assert result.reason == (
        f"signed with key id {KEY.key_id}, but the configured key has id other-key"
    )


def test_a_different_key_with_the_same_id_fails_verification() -> None:
    impostor = SigningKey(secret=b"x" * 32, key_id=KEY.key_id)
    result = verify_envelope(sample(), impostor)
    assert not result.valid
    assert "signature mismatch" in result.reason


def test_a_missing_signed_section_is_named_in_the_reason() -> None:
    envelope = sample()
    del envelope["body"]["verdict"]
    result = verify_envelope(envelope, KEY)
    assert not result.valid
    assert result.reason == "signed section(s) missing from the body: verdict"


def test_dropping_a_section_from_the_signature_fails_verification() -> None:
    envelope = signed({"a": 1, "b": 2}, ["a", "b"])
    envelope["signature"]["sections"] = ["a"]
    envelope["signed_sections"] = ["a"]
    assert not verify_envelope(envelope, KEY).valid


def test_an_unsigned_report_is_invalid() -> None:
    envelope = build_envelope("stress-lab", {"a": 1}, inputs=[], now=NOW, signed_sections=["a"])
    result = verify_envelope(envelope, KEY)
    assert (result.valid, result.reason) == (False, "the report is unsigned (signature is null)")


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("abc", "signature is not an object"),
        ({"alg": "HMAC-MD5"}, "unsupported algorithm"),
        (
            {"alg": "HMAC-SHA256", "key_id": "k", "sections": ["a"], "value": "zz"},
            "value is not 64 lower-case hex digits",
        ),
        (
            {"alg": "HMAC-SHA256", "key_id": "k", "sections": ["a", "a"], "value": "0" * 64},
            "sections lists a name twice",
        ),
    ],
)
def test_a_malformed_signature_is_invalid(signature: Any, reason: str) -> None:
    envelope = sample()
    envelope["signature"] = signature
    result = verify_envelope(envelope, KEY)
    assert not result.valid
    assert reason in result.reason


def test_signed_sections_must_exist_in_the_body() -> None:
    with pytest.raises(ValueError, match="missing from the body: risk"):
        build_envelope("stress-lab", {"a": 1}, inputs=[], now=NOW, signed_sections=["risk"])


def test_generated_at_is_utc_with_a_z_suffix() -> None:
    from datetime import timedelta, timezone

    warsaw = datetime(2024, 6, 7, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    envelope = build_envelope("k", {"a": 1}, inputs=[], now=warsaw, signed_sections=["a"])
    assert envelope["generated_at"] == "2024-06-07T12:30:00Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        build_envelope("k", {"a": 1}, inputs=[], now=datetime(2024, 6, 7), signed_sections=["a"])


def test_inputs_record_each_file_sha256(tmp_path: Path) -> None:
    config = tmp_path / "core.yaml"
    config.write_bytes(b"stress_lab:\n  spread_bps: 45\n")
    envelope = build_envelope("k", {"a": 1}, inputs=[config], now=NOW, signed_sections=["a"])
    assert envelope["inputs"] == [
        {"path": str(config), "sha256": hashlib.sha256(config.read_bytes()).hexdigest()}
    ]
    with pytest.raises(InputError, match="cannot read report input"):
        build_envelope("k", {"a": 1}, inputs=[tmp_path / "nope"], now=NOW, signed_sections=["a"])


bodies = st.dictionaries(json_text, json_values, min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(bodies, st.data())
def test_sign_write_read_verify_round_trips(body: dict[str, Any], data: st.DataObject) -> None:
    sections = data.draw(st.lists(st.sampled_from(sorted(body)), unique=True, min_size=1))
    envelope = signed(body, sections)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "reports" / "report.json"
        write_atomic(path, report_bytes(envelope))
        restored = read_report(path)
    assert restored == json.loads(json.dumps(envelope))
    assert verify_envelope(restored, KEY).valid


def _leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaf_paths(v, (*prefix, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaf_paths(v, (*prefix, i))]
    return [prefix]


def _changed(value: Any) -> Any:
    """A value whose canonical bytes differ from ``value``'s."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 1.0 if abs(value) < 1e15 else value / 2
    return value + "x"


@settings(max_examples=60, deadline=None)
@given(bodies, st.data())
def test_changing_any_signed_leaf_fails_and_unsigned_leaves_do_not(
    body: dict[str, Any], data: st.DataObject
) -> None:
    signed_name = data.draw(st.sampled_from(sorted(body)))
    envelope = signed(body, [signed_name])
    for path in _leaf_paths(envelope["body"]):
        tampered = copy.deepcopy(envelope)
        parent = tampered["body"]
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = _changed(parent[path[-1]])
        assert verify_envelope(tampered, KEY).valid is (path[0] != signed_name)


def test_replacing_any_byte_of_a_signed_section_in_the_file_is_caught(tmp_path: Path) -> None:
    """Every one-byte edit inside the signed section either breaks the file,
    fails verification, or leaves the parsed signed values identical."""
    envelope = signed(
        {"verdict": {"passed": True, "spread_bps": 45.5, "symbol": "ETHUSDT", "n": -3}}, ["verdict"]
    )
    original = report_bytes(envelope)
    start = original.index(b'"verdict": {')
    end = original.index(b"}", start) + 1
    path = tmp_path / "report.json"
    checked = 0
    for position in range(start, end):
        for replacement in b"0x9 -.e":
            if original[position] == replacement:
                continue
            path.write_bytes(original[:position] + bytes([replacement]) + original[position + 1 :])
            try:
                restored = read_report(path)
            except InputError:
                continue
            same_values = restored["body"].get("verdict") == envelope["body"]["verdict"]
            assert verify_envelope(restored, KEY).valid is same_values
            checked += 1
    assert checked > 0


def _key_file(tmp_path: Path, content: bytes, mode: int) -> Path:
    path = tmp_path / "hmac.key"
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_no_key_configured_loads_none() -> None:
    assert load_signing_key({}) is None


def test_the_env_key_is_loaded_with_a_derived_key_id() -> None:
    key = load_signing_key({"STAGECTL_HMAC_KEY": SECRET.decode()})
    assert key is not None
    assert key.secret == SECRET
    assert key.key_id == hashlib.sha256(b"stagectl-key-id:" + SECRET).hexdigest()[:16]


def test_the_key_id_can_be_named_explicitly() -> None:
    env = {"STAGECTL_HMAC_KEY": SECRET.decode(), "STAGECTL_HMAC_KEY_ID": "desk-2024-06"}
    key = load_signing_key(env)
    assert key is not None
    assert key.key_id == "desk-2024-06"
    with pytest.raises(SigningKeyError, match="STAGECTL_HMAC_KEY_ID must be"):
        load_signing_key({**env, "STAGECTL_HMAC_KEY_ID": "has space"})


def test_a_key_file_with_mode_0600_is_accepted_minus_one_trailing_newline(
    tmp_path: Path,
) -> None:
    path = _key_file(tmp_path, SECRET + b"\n", 0o600)
    key = load_signing_key({"STAGECTL_HMAC_KEY_FILE": str(path)})
    assert key == SigningKey(secret=SECRET, key_id=derive_key_id(SECRET))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o610])
def test_a_key_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = _key_file(tmp_path, SECRET, mode)
    with pytest.raises(SigningKeyError) as caught:
        load_signing_key({"STAGECTL_HMAC_KEY_FILE": str(path)})
    assert f"chmod 600 {path}" in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), (b"", "is empty"), (b"\n", "is empty")],
)
def test_a_missing_or_empty_key_file_is_an_error_naming_it(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "hmac.key"
    if content is not None:
        _key_file(tmp_path, content, 0o600)
    with pytest.raises(SigningKeyError, match=message) as caught:
        load_signing_key({"STAGECTL_HMAC_KEY_FILE": str(path)})
    assert str(path) in str(caught.value)


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="not a regular file"):
        load_signing_key({"STAGECTL_HMAC_KEY_FILE": str(tmp_path)})


def test_setting_both_key_sources_is_refused(tmp_path: Path) -> None:
    path = _key_file(tmp_path, SECRET, 0o600)
    with pytest.raises(SigningKeyError, match="set only one"):
        load_signing_key(
            {"STAGECTL_HMAC_KEY": SECRET.decode(), "STAGECTL_HMAC_KEY_FILE": str(path)}
        )


def test_a_short_key_is_refused_without_revealing_it() -> None:
    with pytest.raises(SigningKeyError) as caught:
        load_signing_key({"STAGECTL_HMAC_KEY": "hunter2"})
    assert "shorter than 16 bytes" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_key_never_appears_in_errors_or_reprs(tmp_path: Path) -> None:
    secret = "never-print-this-key-material-42"
    messages = [repr(load_signing_key({"STAGECTL_HMAC_KEY": secret}))]
    for mode in (0o644, 0o600):
        path = _key_file(tmp_path, secret.encode() * (mode == 0o644), mode)
        try:
            load_signing_key({"STAGECTL_HMAC_KEY_FILE": str(path)})
        except SigningKeyError as error:
            messages.append(str(error))
    key = SigningKey(secret=secret.encode(), key_id="k")
    messages.append(verify_envelope(sample(), key).reason)
    messages.append(str(key))
    assert len(messages) == 5
    for message in messages:
        assert secret not in message
        assert secret[:8] not in message


def test_an_envelope_that_would_sign_no_section_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one body section"):
        build_envelope("k", {"a": 1}, inputs=[], now=NOW, signed_sections=[])
