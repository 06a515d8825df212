"""The one parser for numeric ids, counters and path text from requests and command lines.

`str.isdigit()` is true for '²' and '١' (and `int()` takes the latter), and Python ints have no
bound while SQLite and PostgreSQL integers do: a value outside either answers as "not an id" here,
never as a database error.
"""
from __future__ import annotations

import re

MAX_ID = 2**63 - 1  # the largest BIGINT on SQLite and PostgreSQL
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_id(value: object) -> int | None:
    """`value` as a non-negative integer id (ASCII digits, at most MAX_ID), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_ID else None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
        return number if number <= MAX_ID else None
    return None


def parse_int(value: object, *, signed: bool = True) -> int | None:
    """`value` as an integer within ±MAX_ID (ASCII digits, an optional '-'), else None."""
    if isinstance(value, str) and signed and value.startswith("-"):
        number = parse_id(value[1:])
        return -number if number is not None else None
    return parse_id(value)


MAX_PATH_CHARS = 4096
MAX_NAME_BYTES = 255  # one path component, as Linux file systems allow


def check_path_text(text: str, where: str) -> str:
    """`text` (a path from a request) refused with a clear 400 when no file could have that name:
    a NUL byte, more than MAX_PATH_CHARS characters or a component over MAX_NAME_BYTES bytes."""
    from labwork.errors import ConfigError

    if "\x00" in text:
        raise ConfigError("a path may not contain a NUL byte", where=where)
    if len(text) > MAX_PATH_CHARS:
        raise ConfigError(f"the path is longer than {MAX_PATH_CHARS} characters", where=where[:200])
    for part in text.replace("\\", "/").split("/"):
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise ConfigError(f"a path component is longer than {MAX_NAME_BYTES} bytes", where=where[:200])
    return text
