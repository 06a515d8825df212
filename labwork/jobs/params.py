"""Typed job parameters: `k=v` strings from the command line, JSON values from the API.

A value is read as JSON when it parses (`n=3` an int, `x=0.5` a float, `flag=true` a bool,
`xs=[1,2]` a list, `d={"a":1}` a dict, `s="3"` the string "3"); otherwise it is the string as
written (`day=2026-12-01`, a date as its ISO string). papermill writes them into the notebook
with their types kept.
"""
from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from labwork import units
from labwork.errors import ConfigError

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_value(text: str) -> Any:
    """A `k=v` value: JSON when it parses, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def check_name(name: str, where: str) -> str:
    if not NAME.match(name):
        raise ConfigError(f"parameter name {name!r} is not a Python identifier", where=where,
                          hint="parameters look like n=3, xs=[1,2], name=iris")
    return name


def parse_pairs(pairs: list[str] | None, where: str = "--param") -> dict[str, Any]:
    """['n=3', 'xs=[1,2]'] -> {'n': 3, 'xs': [1, 2]}; a pair without '=' is an error."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"parameter {pair!r} is not k=v", where=where,
                              hint="write each parameter as NAME=VALUE, e.g. -p n=3 -p xs='[1,2]'",
                              hints={"dashboard": "write one NAME=VALUE per line"})
        key, value = pair.split("=", 1)
        out[check_name(key.strip(), where)] = parse_value(value)
    return out


def clean(params: dict[str, Any] | None, where: str = "parameters") -> dict[str, Any]:
    """Parameters from the API: names checked, dates as ISO strings, only JSON values."""
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        check_name(str(key), where)
        if isinstance(value, (date, datetime)):
            value = value.isoformat()
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"parameter {key!r} is not a JSON value: {exc}", where=where) from exc
        out[str(key)] = value
    return out


def parse_text(text: str, where: str = "parameters") -> dict[str, Any]:
    """The dashboard's box: one NAME=VALUE per line (blank lines ignored)."""
    return parse_pairs([line.strip() for line in (text or "").splitlines() if line.strip()], where)


def has_parameters_cell(path: Path) -> bool:
    """Whether the notebook has a cell tagged `parameters` (where papermill injects after)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the notebook: {exc}", where=str(path)) from exc
    for cell in data.get("cells", []) if isinstance(data, dict) else []:
        tags = (cell.get("metadata") or {}).get("tags") or []
        if "parameters" in tags:
            return True
    return False


def require_parameters_cell(path: Path, params: dict[str, Any], where: str) -> None:
    if params and not has_parameters_cell(path):
        raise ConfigError(f"the notebook has no cell tagged 'parameters', so parameters "
                          f"({', '.join(sorted(params))}) cannot be given", where=where,
                          hint="tag the cell that sets the defaults with 'parameters' "
                               "(JupyterLab: the property inspector's cell tags)")


def duration_s(value: Any, where: str, *, zero: bool = False) -> float | None:
    """A job's timeout or back-off: '2h', '90s', 7200 (seconds) or None; 0 only where `zero` allows it."""
    if value is None or value == "":
        return None
    try:
        secs = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else units.parse_duration(str(value).strip())
    except ValueError as exc:
        raise ConfigError(f"{exc}", where=where, hint="e.g. 90s, 30m, 2h") from exc
    if secs is None or secs < 0 or (secs == 0 and not zero):
        raise ConfigError(f"{where} must be more than 0, got {value!r}", where=where)
    return secs
