"""Reports: the envelope, its canonical JSON bytes, HMAC signing and atomic files.

Only the standard library is imported here: ``stagectl report verify`` and
``verify-thresholds`` are fast paths.
"""

from __future__ import annotations

from stagectl.reports.canonical import canonical_json
from stagectl.reports.envelope import SCHEMA, build_envelope, file_sha256, utc_timestamp
from stagectl.reports.io import parse_report, read_report, report_bytes, write_atomic
from stagectl.reports.signing import (
    NO_KEY_MESSAGE,
    UNSIGNED_REASON,
    SigningKey,
    VerifyResult,
    derive_key_id,
    load_signing_key,
    sign_envelope,
    verify_envelope,
)

__all__ = [
    "NO_KEY_MESSAGE",
    "SCHEMA",
    "UNSIGNED_REASON",
    "SigningKey",
    "VerifyResult",
    "build_envelope",
    "canonical_json",
    "derive_key_id",
    "file_sha256",
    "load_signing_key",
    "parse_report",
    "read_report",
    "report_bytes",
    "sign_envelope",
    "utc_timestamp",
    "verify_envelope",
    "write_atomic",
]
