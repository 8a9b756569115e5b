"""What a trade may hold (docs/ledger.md, "What a trade file may hold"): the checks of
single values that ``data.trade_validation`` applies to whole columns.

- Numbers (price, amount, fee): ASCII digits 0-9 with an optional sign, point and
  exponent (``Decimal`` and ``int`` also take full-width and other Unicode digits, and
  underscores: not here), finite, at most ``MAX_NUMBER_CHARS`` characters,
  ``MAX_PLACES`` decimal places and ``MAX_ABS`` in absolute value.
- Times: from ``FIRST_TRADE`` to ``FUTURE_SLACK`` after now.
- Ids (trade, order): printable ASCII without spaces, ``!`` to ``~`` (so no control
  characters, no bidirectional overrides, no other non-ASCII), at most ``MAX_ID_CHARS``.
- Symbols and currencies: ASCII letters and digits (``data.trade_validation``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

_MAX_ABS_TEXT = "1e15"
MAX_ABS = Decimal(_MAX_ABS_TEXT)  # the largest price, amount or fee, in absolute value
MAX_PLACES = 18  # decimal places of a price, amount or fee (wei-sized steps)
MAX_NUMBER_CHARS = 40  # a number's text, sign and exponent included
MAX_ID_CHARS = 128  # a trade id or an order id
MAX_SYMBOL_CHARS = 32  # a symbol as stored (ETHUSDT)
FIRST_TRADE = datetime(2009, 1, 1, tzinfo=UTC)  # no crypto trade is older
FUTURE_SLACK = timedelta(days=1)  # how far past now a trade may be stamped (clock skew)

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE = frozenset({"nan", "snan", "inf", "infinity"})
_ID = re.compile(r"[!-~]+")  # printable ASCII but the space
_UNSAFE_JOINED = re.compile(r"[^!-~\n]")  # ids joined by newlines
_SHOWN_CHARS = 40

Reject = Callable[[int, str, str], None]
"""Refuse a row: (index, field, message)."""


def shown(value: Any, *, limit: int = _SHOWN_CHARS, plain: bool = False) -> str:
    """A value for a one-line error: its repr (control and bidirectional characters
    escaped), cut to ``limit`` characters; with ``plain``, printable ASCII text as it is."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        return f"{text[:limit]!r}... ({len(text)} characters)"
    if plain and text.isascii() and text.isprintable():
        return text
    return repr(text)


def exact_decimal(text: str) -> Decimal:
    """A price, amount or fee: ASCII digits with at most one point and an exponent, finite,
    within ``MAX_NUMBER_CHARS``, ``MAX_PLACES`` and ``MAX_ABS``; empty is 0. ValueError
    says why not."""
    text = text.strip()
    if not text:
        return Decimal(0)
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"not a number of at most {MAX_NUMBER_CHARS} characters")
    if _NUMBER.fullmatch(text) is None:
        if text.lstrip("+-").lower() in _NOT_FINITE:
            raise ValueError("not a finite number")
        raise ValueError("not a number: ASCII digits 0-9, an optional sign, point and exponent")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"out of range: at most {_MAX_ABS_TEXT} in absolute value") from None
    if value.copy_abs() > MAX_ABS:
        raise ValueError(f"out of range: at most {_MAX_ABS_TEXT} in absolute value")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_PLACES:
        raise ValueError(f"more than {MAX_PLACES} decimal places")
    return value


def _id_problem(text: str) -> str | None:
    """Why ``text`` cannot be an id (a trade or order id), or None."""
    if len(text) > MAX_ID_CHARS:
        return f"longer than {MAX_ID_CHARS} characters"
    if not _ID.fullmatch(text):
        return (
            "not printable ASCII: spaces, control characters, bidirectional overrides and"
            " other non-ASCII characters cannot be in an id"
        )
    return None


def check_ids(ids: Any, name: str, reject: Reject) -> None:
    """Reject the rows whose id (stripped text; empty ones are left to the caller) is
    unsafe (:func:`_id_problem`).

    A million ids are judged at once: joined by newlines, the whole text is ASCII, holds
    no character outside ``!``..``~`` but the separators, and as many separators as ids
    less one; only when that fails is each id looked at."""
    if not len(ids):
        return
    joined = "\n".join(ids.tolist())
    longest = max(map(len, ids.tolist()))
    if (
        longest <= MAX_ID_CHARS
        and joined.isascii()
        and _UNSAFE_JOINED.search(joined) is None
        and joined.count("\n") == len(ids) - 1
    ):
        return
    for row, text in enumerate(ids.tolist()):
        if text and (problem := _id_problem(text)) is not None:
            reject(row, name, f"{problem} (got {shown(text)})")


_CANONICAL_TS_LEN = 27  # 2024-06-07T08:00:00.000000Z, what state._codec.ts_text writes
_TS_PUNCTUATION = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":", 19: ".", 26: "Z"}
_TS_DIGITS = [k for k in range(26) if k not in _TS_PUNCTUATION]
_MAX_TS_CHARS = 64  # longer text is no time any parser should see


def _canonical_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def timestamps(values: Any, reject: Reject, latest: datetime) -> Any:
    """UTC ``ts_text`` strings from epoch milliseconds or ISO-8601 (no zone = UTC), from
    ``FIRST_TRADE`` to ``latest``.

    A value already in the stored form (``2024-06-07T08:00:00.000000Z``: what our exports
    and ``ts_text`` write) is checked with integer arithmetic on its characters (a numpy
    byte matrix: shape, then month, day in month, hour, minute, second ranges, and the
    bounds compared as bytes, since the form sorts as time does) and kept as it is. Only
    the others are parsed (pandas, vectorised) and formatted."""
    n = len(values)
    bounds = (_canonical_text(FIRST_TRADE), _canonical_text(latest))
    canonical = _canonical(values, bounds)
    out = values.copy()
    rest = np.flatnonzero(~canonical)
    if len(rest):
        texts = np.array([values[k].strip() for k in rest], dtype=object)
        parsed, early, late = _parse_times(texts, bounds)
        out[rest] = parsed
        for k, text, too_early, too_late in zip(rest, texts, early, late, strict=True):
            if too_early:
                message = f"before {FIRST_TRADE:%Y-%m-%d}, earlier than any crypto trade"
            elif too_late:
                message = f"after {latest:%Y-%m-%dT%H:%M}Z, more than a day from now"
            elif out[k] == "":
                message = "not an ISO-8601 time or epoch milliseconds"
            else:
                continue
            reject(int(k), "timestamp", f"{message} (got {shown(text)})")
    return out.reshape(n)


def _parse_times(texts: Any, bounds: tuple[str, str]) -> tuple[Any, Any, Any]:
    """Epoch milliseconds (up to 15 ASCII digits) or ISO-8601 as stored text ("" where
    invalid or out of ``bounds``), and which were before and after the bounds."""
    import pandas as pd

    n = len(texts)
    ascii_text = np.fromiter(
        (v.isascii() and v.isprintable() and len(v) <= _MAX_TS_CHARS for v in texts),
        dtype=bool,
        count=n,
    )
    is_ms = ascii_text & np.fromiter((v.isdigit() and len(v) <= 15 for v in texts), bool, n)
    is_iso = ascii_text & ~is_ms
    micros = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)  # NaT
    if is_ms.any():
        millis = texts[is_ms].astype(np.int64)
        stamps = pd.to_datetime(millis, unit="ms", utc=True, errors="coerce")
        micros[is_ms] = stamps.as_unit("us").asi8
    if is_iso.any():
        stamps = pd.to_datetime(texts[is_iso], utc=True, format="ISO8601", errors="coerce")
        micros[is_iso] = stamps.as_unit("us").asi8
    moments = micros.view("datetime64[us]")
    valid = ~np.isnat(moments)
    first, last = (np.datetime64(bound[:-1], "us") for bound in bounds)
    early = valid & (moments < first)
    late = valid & (moments > last)
    valid &= ~early & ~late
    out = np.full(n, "", dtype=object)
    if valid.any():
        formatted = np.datetime_as_string(moments[valid], unit="us").astype(object)
        out[valid] = formatted + "Z"
    return out, early, late


def _canonical(values: Any, bounds: tuple[str, str]) -> Any:
    """Which values are valid times within ``bounds`` written exactly as
    ``dddd-dd-ddTdd:dd:dd.ddddddZ``."""
    n = len(values)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    shaped = lengths == _CANONICAL_TS_LEN
    rows = np.flatnonzero(shaped)
    if not len(rows):
        return shaped
    try:
        joined = "".join(values[rows].tolist()).encode("ascii")
    except UnicodeEncodeError:
        return np.zeros(n, dtype=bool)
    chars = np.frombuffer(joined, dtype=np.uint8).reshape(len(rows), _CANONICAL_TS_LEN)
    digits = chars[:, _TS_DIGITS].astype(np.int64) - ord("0")
    ok = ((digits >= 0) & (digits <= 9)).all(axis=1)
    for position, char in _TS_PUNCTUATION.items():
        ok &= chars[:, position] == ord(char)
    place = np.array([1000, 100, 10, 1])
    year = digits[:, 0:4] @ place
    month, day = digits[:, 4:6] @ place[2:], digits[:, 6:8] @ place[2:]
    hour, minute, second = (digits[:, k : k + 2] @ place[2:] for k in (8, 10, 12))
    ok &= (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1)
    ok &= (hour < 24) & (minute < 60) & (second < 60)
    first = ((year - 1970) * 12 + np.clip(month, 1, 12) - 1).astype("datetime64[M]")
    days_in_month = (first + 1).astype("datetime64[D]") - first.astype("datetime64[D]")
    ok &= day <= days_in_month.astype(np.int64)
    fixed = np.frombuffer(joined, dtype=f"S{_CANONICAL_TS_LEN}")
    ok &= (fixed >= bounds[0].encode()) & (fixed <= bounds[1].encode())
    shaped[rows] = ok
    return shaped
