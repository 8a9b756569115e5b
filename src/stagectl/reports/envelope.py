"""The report envelope: what every report stagectl writes looks like.

``schema``, ``kind``, ``generated_at``, ``stagectl_version``, ``inputs``
(each input file's path and sha256), ``body`` and ``signature`` (``null``
until ``sign_envelope`` fills it in). The signature covers all of it but the
MAC value itself. docs/reports.md describes each field.

``stagectl.report/v1`` was the schema of the old partial scheme, whose MAC
covered only the body sections a producer listed in ``signed_sections``. Such
a report is still read, so that verification can say what it is, but never
verifies.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stagectl import __version__
from stagectl.errors import InputError

SCHEMA = "stagectl.report/v2"
PARTIAL_SCHEMA = "stagectl.report/v1"
ENVELOPE_FIELDS = (
    "schema",
    "kind",
    "generated_at",
    "stagectl_version",
    "inputs",
    "body",
    "signature",
)


def utc_timestamp(now: datetime) -> str:
    """``now`` as UTC ISO-8601 with a ``Z`` suffix; a naive datetime is refused."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("generated_at needs a timezone-aware datetime (UTC)")
    text = now.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def parse_generated_at(text: str) -> datetime:
    """The UTC time an envelope's ``generated_at`` names (the inverse of
    :func:`utc_timestamp`); ``ValueError`` when it is not an ISO-8601 time with a zone."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"generated_at {text!r} has no time zone")
    return moment.astimezone(UTC)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, as 64 lower-case hex digits."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _input_record(path: Path) -> dict[str, str]:
    try:
        digest = file_sha256(path)
    except OSError as error:
        raise InputError(
            f"cannot read report input: {error.strerror or error}", where=str(path)
        ) from None
    return {"path": str(path), "sha256": digest}


def build_envelope(
    kind: str,
    body: dict[str, Any],
    *,
    inputs: list[Path],
    now: datetime,
) -> dict[str, Any]:
    """An unsigned envelope around ``body``.

    The inputs are hashed now, so the report records the exact bytes it was
    computed from.
    """
    if not kind:
        raise ValueError("a report needs a kind")
    return {
        "schema": SCHEMA,
        "kind": kind,
        "generated_at": utc_timestamp(now),
        "stagectl_version": __version__,
        "inputs": [_input_record(path) for path in inputs],
        "body": body,
        "signature": None,
    }
