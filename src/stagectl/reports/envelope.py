"""The report envelope: what every report stagectl writes looks like.

``schema``, ``kind``, ``generated_at``, ``stagectl_version``, ``inputs``
(each input file's path and sha256), ``body``, ``signed_sections`` (the body
sections the signature is meant to cover) and ``signature`` (``null`` until
``sign_envelope`` fills it in). docs/reports.md describes each field.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stagectl import __version__
from stagectl.errors import InputError

SCHEMA = "stagectl.report/v1"
ENVELOPE_FIELDS = (
    "schema",
    "kind",
    "generated_at",
    "stagectl_version",
    "inputs",
    "body",
    "signed_sections",
    "signature",
)


def utc_timestamp(now: datetime) -> str:
    """``now`` as UTC ISO-8601 with a ``Z`` suffix; a naive datetime is refused."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("generated_at needs a timezone-aware datetime (UTC)")
    text = now.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


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
    signed_sections: list[str],
) -> dict[str, Any]:
    """An unsigned envelope around ``body``.

    ``signed_sections`` must name top-level keys of ``body``, each once; the
    inputs are hashed now, so the report records the exact bytes it was
    computed from.
    """
    if not kind:
        raise ValueError("a report needs a kind")
    if not signed_sections:
        raise ValueError("a report must sign at least one body section")
    missing = [name for name in signed_sections if name not in body]
    if missing:
        raise ValueError(f"signed sections missing from the body: {', '.join(missing)}")
    if len(set(signed_sections)) != len(signed_sections):
        raise ValueError("signed_sections names a section twice")
    return {
        "schema": SCHEMA,
        "kind": kind,
        "generated_at": utc_timestamp(now),
        "stagectl_version": __version__,
        "inputs": [_input_record(path) for path in inputs],
        "body": body,
        "signed_sections": list(signed_sections),
        "signature": None,
    }
