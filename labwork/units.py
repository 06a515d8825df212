"""The one parser for durations, shared by settings and the Livy gateway, and the one for memory
sizes in bytes (`parse_size`: a run configuration's `[resources] memory`, a docker target's
`memory`, the limits kernels report). JVM memory sizes, which Spark reads its own way, are
`labwork.spark_properties`'; `check_size` is re-exported here for settings.

Pure functions raising `ValueError` with what was expected; each caller adds where the value
came from (a settings key, a request field).
"""
from __future__ import annotations

import re
from typing import Any

from labwork.spark_properties import SIZE_EXPECTED, check_size  # noqa: F401 - sizes live there

_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|m|min|mins|h|hour|hours|d|day|days)?\s*$",
                   re.IGNORECASE)
_TIME_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60,
               "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
BYTES_EXPECTED = "a size such as 256m, 4g or 1.5g (a number and one of k, m, g, t)"


def parse_size(value: Any) -> int:
    """A memory size in bytes, binary units: '4g' -> 4294967296, '256m', '1.5G', '512MiB', '96mb';
    a bare number (or an int) is bytes. Raises ValueError saying what was expected."""
    if isinstance(value, bool):
        raise ValueError(f"expected {BYTES_EXPECTED}, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"expected {BYTES_EXPECTED} (not negative), got {value!r}")
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"expected {BYTES_EXPECTED}, got {value!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


DURATION_EXPECTED = "a duration like '90s', '10m' or '1h'"


def parse_duration(value: Any) -> float | None:
    """'10m' -> 600.0 seconds; a bare number is milliseconds (Spark's getTimeAsMs); '' -> None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_EXPECTED}, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"expected {DURATION_EXPECTED} (not negative), got {value!r}")
        return float(value) / 1000.0
    m = _TIME.match(str(value))
    if not m:
        raise ValueError(f"expected {DURATION_EXPECTED}, got {value!r}")
    number, unit = float(m.group(1)), (m.group(2) or "ms").lower()
    return number * _TIME_UNITS[unit]


TIMEOUT_EXPECTED = "a duration with its unit like '90s', '30m' or '1h', or 'off'"
_OFF = ("off", "none", "never", "no")


def parse_timeout(value: Any) -> float | None:
    """A timeout in seconds, for fields a person types: '1h' -> 3600.0; a number is seconds (what
    the stored configuration holds); None, '' or 'off' -> None (no timeout). A string needs its unit
    ('60' alone is refused: seconds or minutes?); 0 or less is refused."""
    if value is None or (isinstance(value, str) and (not value.strip() or value.strip().lower() in _OFF)):
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected {TIMEOUT_EXPECTED}, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _TIME.match(str(value))
        if not m or not m.group(2):
            raise ValueError(f"expected {TIMEOUT_EXPECTED}, got {value!r}")
        seconds = float(m.group(1)) * _TIME_UNITS[m.group(2).lower()]
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"expected {TIMEOUT_EXPECTED} (more than 0), got {value!r}")
    return seconds


def format_seconds(seconds: float) -> str:
    """3600 -> '1 h', 5400 -> '90 min', 45 -> '45 s', 1.5 -> '1.5 s' (how a timeout is said in
    reasons and notices, e.g. 'idle for 1 h')."""
    s = float(seconds)
    if s >= 3600 and s % 3600 == 0:
        return f"{s / 3600:g} h"
    if s >= 60 and s % 60 == 0:
        return f"{s / 60:g} min"
    return f"{round(s, 1):g} s"
