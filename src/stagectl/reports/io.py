"""Writing reports atomically and reading them back strictly.

A report on disk is pretty JSON (indent 2). Verification re-canonicalises, so
whitespace and key order in the file do not matter; any other change does.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from stagectl.errors import InputError
from stagectl.reports.canonical import canonical_json
from stagectl.reports.envelope import PARTIAL_SCHEMA, SCHEMA

_READABLE_SCHEMAS = (SCHEMA, PARTIAL_SCHEMA)

_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema": str,
    "kind": str,
    "generated_at": str,
    "stagectl_version": str,
    "inputs": list,
    "body": dict,
}


def report_bytes(envelope: dict[str, Any]) -> bytes:
    """The bytes of a report file: pretty UTF-8 JSON ending in a newline.

    The envelope is canonicalised first, so a value canonical JSON refuses
    (NaN, a set, a non-str key) is refused here too, naming its path.
    """
    canonical_json(envelope)
    text = json.dumps(envelope, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a part.

    A temporary file in the same directory is written, flushed and fsynced,
    then renamed over ``path``; the directory is fsynced after the rename.
    Parent directories are created. On any error, and on an interruption
    (``Interrupted``, ``KeyboardInterrupt``), the temporary file is removed; an
    ``OSError`` becomes an ``InputError`` naming the file. A new file gets mode
    0666 minus the umask; an existing file keeps its mode.
    """
    import tempfile  # only when writing: off the --json fast paths

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = _target_mode(path)
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise InputError(f"cannot write: {error.strerror or error}", where=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        if isinstance(error, OSError):
            raise InputError(f"cannot write: {error.strerror or error}", where=str(path)) from None
        raise
    _fsync_directory(path.parent)


def _target_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; not every platform lets a directory be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def read_report(path: Path) -> dict[str, Any]:
    """The envelope stored in ``path``.

    Raises ``InputError`` (exit 2) naming the file when it cannot be read, is
    not UTF-8 JSON, holds NaN/Infinity or a duplicate key (readers would
    disagree on its value), or is not a stagectl report envelope. An envelope of
    the old partial scheme (``stagectl.report/v1``) is read, so that verifying it
    can say why it does not verify.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(
            f"cannot read report: {error.strerror or error}", where=str(path)
        ) from None
    return parse_report(raw, path)


def parse_report(raw: bytes, path: Path) -> dict[str, Any]:
    """The envelope in ``raw``, the bytes read from ``path`` (named in errors); the same
    checks as :func:`read_report`. For a caller that also hashes the bytes it judged."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not a JSON report: the file is not UTF-8", where=str(path)) from None
    try:
        document = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        raise InputError(
            f"not a JSON report: {error.msg} (column {error.colno})",
            where=f"{path}:{error.lineno}",
        ) from None
    except (ValueError, RecursionError) as error:
        raise InputError(f"not a JSON report: {error}", where=str(path)) from None
    return _check_envelope(document, path)


def _check_envelope(document: Any, path: Path) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise InputError("not a stagectl report: the top level is not an object", where=str(path))
    if "schema" not in document:
        raise InputError("not a stagectl report: no 'schema' field", where=str(path))
    if document["schema"] not in _READABLE_SCHEMAS:
        raise InputError(
            f"unsupported report schema {document['schema']!r} (expected {SCHEMA})",
            where=str(path),
        )
    for name, expected in _REQUIRED.items():
        if not isinstance(document.get(name), expected):
            raise InputError(
                f"not a stagectl report: '{name}' is missing or has the wrong type",
                where=str(path),
            )
    if "signature" not in document:
        raise InputError("not a stagectl report: no 'signature' field", where=str(path))
    return document
