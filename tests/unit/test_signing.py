"""Report signatures: what they cover, what breaks them, and how the key is loaded."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.errors import InputError, SigningKeyError
from stagectl.reports import (
    PARTIAL_SCHEME_REASON,
    SigningKey,
    build_envelope,
    canonical_json,
    derive_key_id,
    load_signing_key,
    parse_generated_at,
    read_report,
    report_bytes,
    sign_envelope,
    verdict_without_key,
    verify_envelope,
    write_atomic,
)
from tests.unit.test_canonical_json import json_text, json_values

SECRET = b"unit-test-signing-key-0123456789"
KEY = SigningKey(secret=SECRET, key_id=derive_key_id(SECRET))
OTHER = SigningKey(secret=b"another-signing-key-9876543210xx", key_id="other-key")
NOW = datetime(2024, 6, 7, 12, 30, tzinfo=UTC)


def signed(body: dict[str, Any], key: SigningKey = KEY) -> dict[str, Any]:
    return sign_envelope(build_envelope("stress-lab", body, inputs=[], now=NOW), key)


def sample() -> dict[str, Any]:
    return signed({"verdict": {"passed": True, "spread_bps": 45.0}, "notes": {"text": "free"}})


def test_the_mac_covers_the_whole_envelope_but_the_value() -> None:
    envelope = signed({"verdict": {"spread_bps": 45.0, "passed": True}, "notes": "x"})
    payload = (
        b'{"body":{"notes":"x","verdict":{"passed":true,"spread_bps":45.0}},'
        b'"generated_at":"2024-06-07T12:30:00Z","inputs":[],"kind":"stress-lab",'
        b'"schema":"stagectl.report/v2",'
        b'"signature":{"alg":"HMAC-SHA256","key_id":"' + KEY.key_id.encode() + b'"},'
        b'"stagectl_version":"' + envelope["stagectl_version"].encode() + b'"}'
    )
    expected = hmac.new(SECRET, payload, hashlib.sha256).hexdigest()
    assert envelope["signature"] == {"alg": "HMAC-SHA256", "key_id": KEY.key_id, "value": expected}
    assert list(envelope) == [
        "schema",
        "kind",
        "generated_at",
        "stagectl_version",
        "inputs",
        "body",
        "signature",
    ]


def test_a_signed_report_verifies_with_its_key() -> None:
    result = verify_envelope(sample(), KEY)
    assert (result.valid, result.reason, result.key_id) == (True, "signature valid", KEY.key_id)


def test_changing_a_value_fails_verification() -> None:
    envelope = sample()
    envelope["body"]["verdict"]["spread_bps"] = 45.000001
    result = verify_envelope(envelope, KEY)
    assert not result.valid
    assert result.reason.startswith("signature mismatch: the report was changed after signing")


def test_every_body_section_is_signed() -> None:
    """The old scheme signed only the listed sections; `notes` was free to edit."""
    envelope = sample()
    envelope["body"]["notes"] = {"text": "rewritten"}
    assert not verify_envelope(envelope, KEY).valid


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e["body"].update(added={"a": 1}),
        lambda e: e["body"].pop("notes"),
        lambda e: e["body"].pop("verdict"),
        lambda e: e.update(signed_sections=["verdict"]),
        lambda e: e.update(comment="added at the top level"),
        lambda e: e["signature"].update(sections=["verdict"]),
        lambda e: e.update(kind="verify-thresholds"),
        lambda e: e.update(generated_at="2024-06-07T12:30:01Z"),
        lambda e: e.update(stagectl_version="9.9.9"),
        lambda e: e.update(inputs=[{"path": "config/core.yaml", "sha256": "0" * 64}]),
        lambda e: e.update(schema="stagectl.report/v3"),
    ],
    ids=[
        "add a body section",
        "remove the notes section",
        "remove the verdict section",
        "add signed_sections",
        "add a top-level field",
        "add a signature field",
        "kind",
        "generated_at",
        "stagectl_version",
        "inputs",
        "schema",
    ],
)
def test_adding_removing_or_changing_any_part_fails_verification(
    change: Callable[[dict[str, Any]], Any],
) -> None:
    envelope = sample()
    change(envelope)
    assert not verify_envelope(envelope, KEY).valid


def test_the_key_id_is_signed() -> None:
    """Renaming the key id, even to one the same key is configured under, is caught."""
    envelope = sample()
    envelope["signature"]["key_id"] = "renamed"
    result = verify_envelope(envelope, SigningKey(secret=SECRET, key_id="renamed"))
    assert not result.valid
    assert "signature mismatch" in result.reason


def signed_partially(
    envelope: dict[str, Any], key: SigningKey, sections: list[str]
) -> dict[str, Any]:
    """``envelope`` as stagectl signed reports before (``stagectl.report/v1``): the MAC
    covered the metadata and the listed body sections only."""
    old = {k: v for k, v in envelope.items() if k != "signature"}
    old["schema"] = "stagectl.report/v1"
    payload = canonical_json(
        {
            "generated_at": old["generated_at"],
            "inputs": old["inputs"],
            "kind": old["kind"],
            "schema": old["schema"],
            "sections": {name: old["body"][name] for name in sections},
            "stagectl_version": old["stagectl_version"],
        }
    )
    value = hmac.new(key.secret, payload, hashlib.sha256).hexdigest()
    signature = {"alg": "HMAC-SHA256", "key_id": key.key_id, "sections": sections, "value": value}
    return {**old, "signed_sections": sections, "signature": signature}


def partial_scheme_report(key: SigningKey) -> dict[str, Any]:
    """A risk-guard report of the old scheme, which signed only its decision."""
    body = {"decision": {"action": "NO_ACTION"}, "state": {"directives": []}}
    return signed_partially(
        build_envelope("risk-guard", body, inputs=[], now=NOW), key, ["decision"]
    )


def test_a_report_of_the_old_partial_scheme_is_invalid_and_says_to_regenerate_it() -> None:
    result = verify_envelope(partial_scheme_report(KEY), KEY)
    assert (result.valid, result.key_id) == (False, KEY.key_id)
    assert result.reason == PARTIAL_SCHEME_REASON
    assert result.reason.startswith("signed with the old partial scheme")
    assert result.reason.endswith("re-generate the report")
    assert verdict_without_key(partial_scheme_report(KEY)) == result


def test_only_the_current_schema_is_signed() -> None:
    envelope = build_envelope("k", {"a": 1}, inputs=[], now=NOW)
    envelope["schema"] = "stagectl.report/v1"
    with pytest.raises(ValueError, match=r"only stagectl\.report/v2 envelopes are signed"):
        sign_envelope(envelope, KEY)


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


def test_an_unsigned_report_is_invalid() -> None:
    envelope = build_envelope("stress-lab", {"a": 1}, inputs=[], now=NOW)
    result = verify_envelope(envelope, KEY)
    assert (result.valid, result.reason) == (False, "the report is unsigned (signature is null)")


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("abc", "signature is not an object"),
        ({"alg": "HMAC-MD5"}, "unsupported algorithm"),
        ({"alg": "HMAC-SHA256", "key_id": 7, "value": "0" * 64}, "key_id is not a string"),
        (
            {"alg": "HMAC-SHA256", "key_id": "k", "value": "zz"},
            "value is not 64 lower-case hex digits",
        ),
        ({"alg": "HMAC-SHA256", "key_id": "k"}, "value is not 64 lower-case hex digits"),
    ],
)
def test_a_malformed_signature_is_invalid(signature: Any, reason: str) -> None:
    envelope = sample()
    envelope["signature"] = signature
    result = verify_envelope(envelope, KEY)
    assert not result.valid
    assert reason in result.reason


@pytest.mark.parametrize(
    ("generated", "valid", "reason"),
    [
        (timedelta(hours=-2), False, "too old: generated 2024-06-07T10:30:00Z, 2h ago, "),
        (timedelta(hours=-1), True, "signature valid"),
        (timedelta(minutes=30), True, "signature valid"),
        (
            timedelta(hours=1, seconds=1),
            False,
            "from the future: generated 2024-06-07T13:30:01Z, 1h 1s after now, ",
        ),
    ],
)
def test_max_age_fails_a_report_generated_longer_ago_or_too_far_ahead(
    generated: timedelta, valid: bool, reason: str
) -> None:
    envelope = sign_envelope(build_envelope("k", {"a": 1}, inputs=[], now=NOW + generated), KEY)
    result = verify_envelope(envelope, KEY, max_age=timedelta(hours=1), now=NOW)
    assert (result.valid, result.key_id) == (valid, KEY.key_id)
    assert result.reason.startswith(reason)
    if not valid:
        assert "the maximum age 1h" in result.reason


def test_max_age_never_rescues_an_invalid_signature() -> None:
    envelope = sample()
    envelope["body"]["notes"] = "edited"
    result = verify_envelope(envelope, KEY, max_age=timedelta(days=3650), now=NOW)
    assert "signature mismatch" in result.reason


def test_max_age_cannot_judge_a_generated_at_that_is_not_a_time() -> None:
    envelope = build_envelope("k", {"a": 1}, inputs=[], now=NOW)
    envelope["generated_at"] = "last tuesday"
    result = verify_envelope(sign_envelope(envelope, KEY), KEY, max_age=timedelta(1), now=NOW)
    assert (result.valid, result.reason) == (
        False,
        "generated_at 'last tuesday' is not an ISO-8601 time, so its age is unknown",
    )


def test_generated_at_round_trips_as_utc_with_a_z_suffix() -> None:
    warsaw = datetime(2024, 6, 7, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    envelope = build_envelope("k", {"a": 1}, inputs=[], now=warsaw)
    assert envelope["generated_at"] == "2024-06-07T12:30:00Z"
    assert parse_generated_at(envelope["generated_at"]) == NOW
    with pytest.raises(ValueError, match="timezone-aware"):
        build_envelope("k", {"a": 1}, inputs=[], now=datetime(2024, 6, 7))
    with pytest.raises(ValueError, match="no time zone"):
        parse_generated_at("2024-06-07T12:30:00")


def test_inputs_record_each_file_sha256(tmp_path: Path) -> None:
    config = tmp_path / "core.yaml"
    config.write_bytes(b"stress_lab:\n  spread_bps: 45\n")
    envelope = build_envelope("k", {"a": 1}, inputs=[config], now=NOW)
    assert envelope["inputs"] == [
        {"path": str(config), "sha256": hashlib.sha256(config.read_bytes()).hexdigest()}
    ]
    with pytest.raises(InputError, match="cannot read report input"):
        build_envelope("k", {"a": 1}, inputs=[tmp_path / "nope"], now=NOW)


bodies = st.dictionaries(json_text, json_values, min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(bodies)
def test_sign_write_read_verify_round_trips(body: dict[str, Any]) -> None:
    envelope = signed(body)
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
@given(bodies)
def test_changing_any_leaf_of_the_envelope_fails_verification(body: dict[str, Any]) -> None:
    envelope = signed(body)
    for path in _leaf_paths(envelope):
        tampered = copy.deepcopy(envelope)
        parent = tampered
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = _changed(parent[path[-1]])
        assert not verify_envelope(tampered, KEY).valid, path


def test_replacing_any_byte_of_the_file_is_caught_unless_the_document_is_the_same(
    tmp_path: Path,
) -> None:
    """Every one-byte edit anywhere in the file either breaks it, fails verification,
    or leaves the same canonical document (a whitespace edit, say)."""
    envelope = signed({"verdict": {"passed": True, "spread_bps": 45.5, "symbol": "ETH", "n": -3}})
    original = report_bytes(envelope)
    path = tmp_path / "report.json"
    outcomes = {"unreadable": 0, "invalid": 0, "same": 0}
    for position in range(len(original)):
        for replacement in b"0x9 -.e":
            if original[position] == replacement:
                continue
            path.write_bytes(original[:position] + bytes([replacement]) + original[position + 1 :])
            try:
                restored = read_report(path)
            except InputError:
                outcomes["unreadable"] += 1
                continue
            same = canonical_json(restored) == canonical_json(envelope)
            assert verify_envelope(restored, KEY).valid is same
            outcomes["same" if same else "invalid"] += 1
    assert min(outcomes.values()) > 0


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
