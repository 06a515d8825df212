"""What run history stores faithfully on every database, in one place: the column types.

* Logged values are JSON, and JSON has no NaN or infinities (PostgreSQL refuses `NaN` in a `json`
  column; SQLite used to turn it into null). `FaithfulJSON` stores a non-finite float as the object
  `{"$float": "NaN" | "Infinity" | "-Infinity"}` and reads it back as the float. No logged value is
  an object (values are numbers, strings or flat lists of them), so the marker cannot be confused
  with anything a kernel logged.
* PostgreSQL text cannot hold a NUL character. `SafeText` / `SafeString` replace each U+0000 with
  the visible U+2400 SYMBOL FOR NULL on the way in, on SQLite too, so both databases give back the
  same text. Strings inside logged values get the same replacement (PostgreSQL's `json` would take
  `\\u0000`, but not every query on it would).
* The API and the CLI speak JSON too: `for_json` shows a non-finite number as the string
  `"NaN"`, `"Infinity"` or `"-Infinity"` (what `float()` and JavaScript's `Number()` read back);
  its `kind` stays `number`, which tells it from a logged string.
"""
from __future__ import annotations

import math
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.types import TypeDecorator

NUL = "\x00"
NUL_SHOWN = "\u2400"
_MARK = "$float"
_NAMES = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def safe_text(text: str | None) -> str | None:
    """`text` with every NUL shown as U+2400 (PostgreSQL text cannot hold NUL)."""
    if text is None or NUL not in text:
        return text
    return text.replace(NUL, NUL_SHOWN)


def _float_name(value: float) -> str:
    return _NAMES[repr(value)] if repr(value) in _NAMES else _NAMES["nan"]


def encode_value(value: Any) -> Any:
    """A logged value as the store keeps it (non-finite floats marked, NULs shown)."""
    if isinstance(value, float) and not math.isfinite(value):
        return {_MARK: _float_name(value)}
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, list):
        return [encode_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    return value


def decode_value(value: Any) -> Any:
    """The stored form back as Python values (floats NaN, inf, -inf)."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(_MARK), str) and value[_MARK] in _FLOATS:
            return _FLOATS[value[_MARK]]
        return {k: decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


def for_json(value: Any) -> Any:
    """A value for a JSON answer: non-finite floats become "NaN", "Infinity" or "-Infinity"."""
    if isinstance(value, float) and not math.isfinite(value):
        return _float_name(value)
    if isinstance(value, list):
        return [for_json(v) for v in value]
    if isinstance(value, dict):
        return {k: for_json(v) for k, v in value.items()}
    return value


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class FaithfulJSON(TypeDecorator):
    """JSON that keeps NaN and the infinities (see the module's docstring)."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return encode_value(value)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return decode_value(value)


class SafeText(TypeDecorator):
    """Text without NUL characters (shown as U+2400), the same on every database."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return safe_text(value) if isinstance(value, str) else value


class SafeString(TypeDecorator):
    """`String(n)` without NUL characters (shown as U+2400)."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return safe_text(value) if isinstance(value, str) else value
