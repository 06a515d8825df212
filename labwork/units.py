"""The one parser for durations, shared by settings and the Livy gateway (JVM memory sizes are
`labwork.spark_properties`'; `check_size` is re-exported here for settings).

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
