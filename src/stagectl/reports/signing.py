"""HMAC-SHA256 signatures over a report's canonical bytes, and the signing key.

The key comes from ``STAGECTL_HMAC_KEY`` (the value itself) or
``STAGECTL_HMAC_KEY_FILE`` (a file readable by its owner only). Nothing in
this module ever puts the key, or any part of it, into a message, a repr or
an output; the key id is a one-way fingerprint.

The MAC covers ``canonical_json`` of the whole envelope with the signature's
``value`` left out: every top-level field, every body section whatever its
name, and the signature's ``alg`` and ``key_id``. So adding, removing or
changing anything a JSON parser reads from the file fails verification; only
whitespace and key order, which canonical JSON does not see, may change.

A ``stagectl.report/v1`` report was signed by the old partial scheme (the MAC
covered only the body sections named in ``signed_sections``, so the rest of
its body could be edited freely). It never verifies: its reason says to
re-generate it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from stagectl.errors import SigningKeyError
from stagectl.reports.canonical import canonical_json
from stagectl.reports.envelope import PARTIAL_SCHEMA, SCHEMA, parse_generated_at

ALGORITHM = "HMAC-SHA256"
KEY_ENV = "STAGECTL_HMAC_KEY"
KEY_FILE_ENV = "STAGECTL_HMAC_KEY_FILE"
KEY_ID_ENV = "STAGECTL_HMAC_KEY_ID"
MIN_KEY_BYTES = 16
NO_KEY_MESSAGE = f"no signing key: set {KEY_ENV} or {KEY_FILE_ENV} (chmod 600), or pass --unsigned"
VERIFY_NO_KEY_MESSAGE = (
    f"no signing key: set {KEY_ENV} or {KEY_FILE_ENV} (chmod 600) "
    "to the key the report was signed with"
)
UNSIGNED_REASON = "the report is unsigned (signature is null)"
PARTIAL_SCHEME_REASON = (
    f"signed with the old partial scheme ({PARTIAL_SCHEMA}: only some body sections were "
    "signed, the rest could be edited); re-generate the report"
)
_KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class SigningKey:
    """An HMAC key and its public id. ``repr`` shows the id only."""

    secret: bytes = field(repr=False)
    key_id: str

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on one report's signature, with a reason a person can act on."""

    valid: bool
    reason: str
    key_id: str | None


def derive_key_id(secret: bytes) -> str:
    """The default key id: the first 16 hex digits of sha256(b"stagectl-key-id:" + key)."""
    return hashlib.sha256(b"stagectl-key-id:" + secret).hexdigest()[:16]


def load_signing_key(environ: Mapping[str, str] | None = None) -> SigningKey | None:
    """The key configured in the environment, or ``None`` when none is set.

    Raises ``SigningKeyError`` when both variables are set, when the key is
    empty or shorter than 16 bytes, or when the key file is missing, not a
    regular file, or grants any permission to group or others.
    """
    env = os.environ if environ is None else environ
    value = env.get(KEY_ENV)
    file_name = env.get(KEY_FILE_ENV)
    if value is not None and file_name is not None:
        raise SigningKeyError(f"both {KEY_ENV} and {KEY_FILE_ENV} are set; set only one")
    if value is not None:
        secret = os.fsencode(value)
        source = KEY_ENV
    elif file_name is not None:
        if not file_name:
            raise SigningKeyError(f"{KEY_FILE_ENV} is set but empty; set it to the key file")
        secret = _read_key_file(Path(file_name).expanduser())
        source = f"key file {file_name}"
    else:
        return None
    if not secret:
        raise SigningKeyError(f"the signing key in {source} is empty")
    if len(secret) < MIN_KEY_BYTES:
        raise SigningKeyError(
            f"the signing key in {source} is shorter than {MIN_KEY_BYTES} bytes; "
            "use a random key of 32 bytes or more"
        )
    return SigningKey(secret=secret, key_id=_key_id(secret, env))


def _key_id(secret: bytes, env: Mapping[str, str]) -> str:
    override = env.get(KEY_ID_ENV)
    if not override:
        return derive_key_id(secret)
    if not _KEY_ID_PATTERN.match(override):
        raise SigningKeyError(f"{KEY_ID_ENV} must be 1-64 characters from A-Z a-z 0-9 . _ : -")
    return override


def _read_key_file(path: Path) -> bytes:
    """The key file's bytes minus one trailing newline (LF or CRLF).

    The mode is checked on the opened descriptor, so the file checked is the
    file read.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise SigningKeyError(f"signing key file {path} does not exist") from None
    except OSError as error:
        raise SigningKeyError(
            f"cannot open signing key file {path}: {error.strerror or error}"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SigningKeyError(f"signing key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise SigningKeyError(
                f"signing key file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read()
    finally:
        os.close(fd)
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise SigningKeyError(f"signing key file {path} is empty")
    return data


def signed_payload(envelope: dict[str, Any]) -> bytes:
    """The canonical bytes the MAC is computed over: the whole envelope, its
    ``signature`` object without ``value`` (see the module docstring)."""
    signature = envelope.get("signature")
    if isinstance(signature, dict):
        signature = {name: value for name, value in signature.items() if name != "value"}
    return canonical_json({**envelope, "signature": signature})


def _mac(secret: bytes, payload: bytes) -> str:
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def sign_envelope(envelope: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """A copy of ``envelope`` signed whole: ``signature`` is ``{alg, key_id, value}``."""
    if envelope.get("schema") != SCHEMA:
        raise ValueError(f"only {SCHEMA} envelopes are signed, not {envelope.get('schema')!r}")
    header = {"alg": ALGORITHM, "key_id": key.key_id}
    value = _mac(key.secret, signed_payload({**envelope, "signature": header}))
    return {**envelope, "signature": {**header, "value": value}}


def verdict_without_key(envelope: dict[str, Any]) -> VerifyResult | None:
    """The verdict no key is needed for (unsigned, the old partial scheme, another
    schema), else ``None``: then only the key can tell."""
    if envelope.get("signature") is None:
        return VerifyResult(False, UNSIGNED_REASON, None)
    schema = envelope.get("schema")
    if schema == PARTIAL_SCHEMA:
        return VerifyResult(False, PARTIAL_SCHEME_REASON, _key_id_of(envelope["signature"]))
    if schema != SCHEMA:
        return VerifyResult(
            False, f"unsupported report schema {schema!r} (expected {SCHEMA})", None
        )
    return None


def _key_id_of(signature: Any) -> str | None:
    key_id = signature.get("key_id") if isinstance(signature, dict) else None
    return key_id if isinstance(key_id, str) else None


def verify_envelope(
    envelope: dict[str, Any],
    key: SigningKey,
    *,
    max_age: timedelta | None = None,
    now: datetime | None = None,
) -> VerifyResult:
    """Check ``envelope``'s signature with ``key``; the reason says what failed.

    With ``max_age`` (and ``now``, an aware datetime) a valid report whose signed
    ``generated_at`` lies more than ``max_age`` before ``now`` is invalid, and so is
    one stamped more than ``max_age`` after it (the signer's clock was wrong).
    """
    early = verdict_without_key(envelope)
    if early is not None:
        return early
    signature = envelope["signature"]
    problem = _signature_shape_problem(signature)
    if problem:
        return VerifyResult(False, f"malformed signature: {problem}", _key_id_of(signature))
    key_id: str = signature["key_id"]
    if key_id != key.key_id:
        return VerifyResult(
            False,
            f"signed with key id {key_id}, but the configured key has id {key.key_id}",
            key_id,
        )
    try:
        expected = _mac(key.secret, signed_payload(envelope))
    except (TypeError, ValueError, RecursionError) as error:
        return VerifyResult(False, f"the report cannot be canonicalised: {error}", key_id)
    if not hmac.compare_digest(expected, signature["value"]):
        return VerifyResult(
            False,
            "signature mismatch: the report was changed after signing "
            "(or it was signed by a different key with the same id)",
            key_id,
        )
    if max_age is not None:
        if now is None:
            raise ValueError("max_age needs now")
        stale = _age_problem(envelope.get("generated_at"), max_age, now)
        if stale is not None:
            return VerifyResult(False, stale, key_id)
    return VerifyResult(True, "signature valid", key_id)


def _age_problem(generated_at: Any, max_age: timedelta, now: datetime) -> str | None:
    try:
        age = now - parse_generated_at(generated_at)
    except (TypeError, ValueError):
        return f"generated_at {generated_at!r} is not an ISO-8601 time, so its age is unknown"
    if age > max_age:
        return (
            f"too old: generated {generated_at}, {describe_duration(age)} ago, "
            f"more than the maximum age {describe_duration(max_age)}"
        )
    if -age > max_age:
        return (
            f"from the future: generated {generated_at}, {describe_duration(-age)} after now, "
            f"more than the maximum age {describe_duration(max_age)}; the signing machine's "
            "clock was wrong"
        )
    return None


def describe_duration(span: timedelta) -> str:
    """``span`` in whole days, hours, minutes and seconds (``2d 3h``, ``45m 10s``, ``0s``)."""
    seconds = int(span.total_seconds())
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0s"


def _signature_shape_problem(signature: Any) -> str | None:
    if not isinstance(signature, dict):
        return "signature is not an object"
    if signature.get("alg") != ALGORITHM:
        return f"unsupported algorithm {signature.get('alg')!r} (expected {ALGORITHM})"
    if not isinstance(signature.get("key_id"), str):
        return "key_id is not a string"
    value = signature.get("value")
    if not isinstance(value, str) or not _HEX_SHA256.match(value):
        return "value is not 64 lower-case hex digits"
    return None
