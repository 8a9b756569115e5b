"""HMAC-SHA256 signatures over a report's canonical bytes, and the signing key.

The key comes from ``STAGECTL_HMAC_KEY`` (the value itself) or
``STAGECTL_HMAC_KEY_FILE`` (a file readable by its owner only). Nothing in
this module ever puts the key, or any part of it, into a message, a repr or
an output; the key id is a one-way fingerprint.

The MAC covers ``canonical_json`` of::

    {"generated_at", "inputs", "kind", "schema", "sections": {name: body[name]},
     "stagectl_version"}

so the signed body sections and everything that says where the report came
from (its inputs' sha256, the stagectl version, the time) cannot change
without the signature failing. Body sections not listed are not covered.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stagectl.errors import SigningKeyError
from stagectl.reports.canonical import canonical_json

ALGORITHM = "HMAC-SHA256"
KEY_ENV = "STAGECTL_HMAC_KEY"
KEY_FILE_ENV = "STAGECTL_HMAC_KEY_FILE"
KEY_ID_ENV = "STAGECTL_HMAC_KEY_ID"
MIN_KEY_BYTES = 16
NO_KEY_MESSAGE = f"no signing key: set {KEY_ENV} or {KEY_FILE_ENV} (chmod 600), or pass --unsigned"
UNSIGNED_REASON = "the report is unsigned (signature is null)"
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
    sections: list[str]


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


def signed_payload(envelope: dict[str, Any], sections: list[str]) -> bytes:
    """The canonical bytes the MAC is computed over (see the module docstring)."""
    body = envelope["body"]
    return canonical_json(
        {
            "generated_at": envelope["generated_at"],
            "inputs": envelope["inputs"],
            "kind": envelope["kind"],
            "schema": envelope["schema"],
            "sections": {name: body[name] for name in sections},
            "stagectl_version": envelope["stagectl_version"],
        }
    )


def _mac(secret: bytes, payload: bytes) -> str:
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def sign_envelope(envelope: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """A copy of ``envelope`` with its ``signature`` over ``signed_sections``."""
    sections = list(envelope["signed_sections"])
    missing = [name for name in sections if name not in envelope["body"]]
    if missing:
        raise ValueError(f"signed sections missing from the body: {', '.join(missing)}")
    value = _mac(key.secret, signed_payload(envelope, sections))
    signature = {"alg": ALGORITHM, "key_id": key.key_id, "sections": sections, "value": value}
    return {**envelope, "signature": signature}


def verify_envelope(envelope: dict[str, Any], key: SigningKey) -> VerifyResult:
    """Check ``envelope``'s signature with ``key``; the reason says what failed."""
    signature = envelope.get("signature")
    if signature is None:
        return VerifyResult(False, UNSIGNED_REASON, None, [])
    problem = _signature_shape_problem(signature)
    if problem:
        return VerifyResult(False, f"malformed signature: {problem}", None, [])
    key_id: str = signature["key_id"]
    sections: list[str] = list(signature["sections"])

    def invalid(reason: str) -> VerifyResult:
        return VerifyResult(False, reason, key_id, sections)

    if key_id != key.key_id:
        return invalid(f"signed with key id {key_id}, but the configured key has id {key.key_id}")
    declared = envelope.get("signed_sections")
    if declared is not None and list(declared) != sections:
        return invalid(
            "the signature covers sections "
            f"[{', '.join(sections)}] but the report declares [{', '.join(map(str, declared))}]"
        )
    missing = [name for name in sections if name not in envelope["body"]]
    if missing:
        return invalid(f"signed section(s) missing from the body: {', '.join(missing)}")
    try:
        expected = _mac(key.secret, signed_payload(envelope, sections))
    except (TypeError, ValueError, KeyError) as error:
        return invalid(f"the report cannot be canonicalised: {error}")
    if not hmac.compare_digest(expected, signature["value"]):
        return invalid(
            "signature mismatch: the signed content was changed after signing "
            "(or it was signed by a different key with the same id)"
        )
    return VerifyResult(True, "signature valid", key_id, sections)


def _signature_shape_problem(signature: Any) -> str | None:
    if not isinstance(signature, dict):
        return "signature is not an object"
    if signature.get("alg") != ALGORITHM:
        return f"unsupported algorithm {signature.get('alg')!r} (expected {ALGORITHM})"
    if not isinstance(signature.get("key_id"), str):
        return "key_id is not a string"
    sections = signature.get("sections")
    if not isinstance(sections, list) or not all(isinstance(s, str) for s in sections):
        return "sections is not a list of names"
    if len(set(sections)) != len(sections):
        return "sections lists a name twice"
    value = signature.get("value")
    if not isinstance(value, str) or not _HEX_SHA256.match(value):
        return "value is not 64 lower-case hex digits"
    return None
