"""The canonical JSON bytes that report signatures are computed over.

The form is defined here, not by whichever JSON library happens to be
installed (orjson, for one, spells small floats differently), so a report
signed on one machine verifies on any other. docs/reports.md states the same
definition for people writing verifiers in other languages:

- ``null``, ``true``, ``false``;
- integers (``int``, not ``bool``) in decimal, no exponent, no fraction;
- floats as Python's shortest round-trip ``repr`` (``0.1``, ``1e-05``,
  ``1e+16``, ``-0.0``, ``2.0``); NaN and infinities are refused;
- strings in double quotes; ``"`` and ``\\`` escaped with a backslash;
  U+0008, U+0009, U+000A, U+000C, U+000D as ``\\b \\t \\n \\f \\r``; every
  other code point below U+0020 as ``\\u00XX`` (lower-case hex); everything
  else, including all non-ASCII characters, written as itself;
- arrays (``list`` or ``tuple``) as ``[a,b]``; objects (``dict`` with ``str``
  keys only) as ``{"k":v}`` with keys sorted by Unicode code point;
- no whitespace anywhere; the result encoded as UTF-8 (lone surrogates are
  refused).

Any other type raises ``TypeError`` naming the path of the value
(``$.body.rows[3].price``).
"""

from __future__ import annotations

import math
import re
from typing import Any

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def canonical_json(obj: Any) -> bytes:
    """The canonical UTF-8 JSON bytes of ``obj`` (see the module docstring)."""
    parts: list[str] = []
    _encode(obj, "$", parts, set())
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            "canonical JSON refuses lone surrogates: a string holds a code point "
            f"that UTF-8 cannot encode (U+{ord(text[error.start]):04X})"
        ) from None


def _escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _string(value: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, value) + '"'


def _child_path(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{_string(key)}]"


def _encode(value: Any, path: str, out: list[str], active: set[int]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"canonical JSON refuses NaN and infinity: {path} is {value!r}")
        out.append(float.__repr__(value))
    elif isinstance(value, dict):
        _encode_object(value, path, out, active)
    elif isinstance(value, list | tuple):
        _encode_array(value, path, out, active)
    else:
        raise TypeError(
            f"canonical JSON accepts only dict, list, tuple, str, int, float, bool and None: "
            f"{path} is a {type(value).__name__}"
        )


def _enter(value: Any, path: str, active: set[int]) -> None:
    if id(value) in active:
        raise ValueError(f"canonical JSON refuses circular references: {path}")
    active.add(id(value))


def _encode_object(value: dict[Any, Any], path: str, out: list[str], active: set[int]) -> None:
    _enter(value, path, active)
    for key in value:
        if not isinstance(key, str):
            raise TypeError(
                f"canonical JSON object keys must be str: {path} has a "
                f"{type(key).__name__} key {key!r}"
            )
    out.append("{")
    for index, key in enumerate(sorted(value)):
        if index:
            out.append(",")
        out.append(_string(key))
        out.append(":")
        _encode(value[key], _child_path(path, key), out, active)
    out.append("}")
    active.discard(id(value))


def _encode_array(
    value: list[Any] | tuple[Any, ...], path: str, out: list[str], active: set[int]
) -> None:
    _enter(value, path, active)
    out.append("[")
    for index, item in enumerate(value):
        if index:
            out.append(",")
        _encode(item, f"{path}[{index}]", out, active)
    out.append("]")
    active.discard(id(value))
