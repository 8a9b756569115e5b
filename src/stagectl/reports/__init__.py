"""Reports: the envelope, its canonical JSON bytes, HMAC signing and atomic files.

Only the standard library is imported here: ``stagectl report verify`` and
``verify-thresholds`` are fast paths.
"""

from __future__ import annotations

from stagectl.reports.canonical import canonical_json
from stagectl.reports.envelope import (
    PARTIAL_SCHEMA,
    SCHEMA,
    build_envelope,
    file_sha256,
    parse_generated_at,
    utc_timestamp,
)
from stagectl.reports.io import parse_report, read_report, report_bytes, write_atomic
from stagectl.reports.signing import (
    NO_KEY_MESSAGE,
    PARTIAL_SCHEME_REASON,
    UNSIGNED_REASON,
    VERIFY_NO_KEY_MESSAGE,
    SigningKey,
    VerifyResult,
    derive_key_id,
    load_signing_key,
    sign_envelope,
    verdict_without_key,
    verify_envelope,
)

__all__ = [
    "NO_KEY_MESSAGE",
    "PARTIAL_SCHEMA",
    "PARTIAL_SCHEME_REASON",
    "SCHEMA",
    "UNSIGNED_REASON",
    "VERIFY_NO_KEY_MESSAGE",
    "SigningKey",
    "VerifyResult",
    "build_envelope",
    "canonical_json",
    "derive_key_id",
    "file_sha256",
    "load_signing_key",
    "parse_generated_at",
    "parse_report",
    "read_report",
    "report_bytes",
    "sign_envelope",
    "utc_timestamp",
    "verdict_without_key",
    "verify_envelope",
    "write_atomic",
]
