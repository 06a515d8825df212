"""Python values as Livy shows them: `%table`'s typed columns, `sql` rows as JSON, strict JSON."""
from __future__ import annotations

import base64
import datetime
import decimal
import math
from typing import Any


def convert(value: Any) -> tuple[str, Any]:
    if value is None:
        return "NULL_TYPE", None
    if isinstance(value, bool):
        return "BOOLEAN_TYPE", value
    if isinstance(value, int):
        return ("INT_TYPE" if -2**31 <= value < 2**31 else "BIGINT_TYPE"), value
    if isinstance(value, float):
        return "DOUBLE_TYPE", value
    if isinstance(value, datetime.datetime):
        return "TIMESTAMP_TYPE", str(value)
    if isinstance(value, datetime.date):
        return "DATE_TYPE", str(value)
    if isinstance(value, decimal.Decimal):
        return "DECIMAL_TYPE", str(value)
    if isinstance(value, (list, tuple)):
        kind, items = None, []
        for item in value:
            t, v = convert(item)
            if kind is None:
                kind = t
            elif kind != t:
                raise ValueError("value has different types")
            items.append(v)
        return "ARRAY_TYPE", items
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out[str(convert(k)[1])] = convert(v)[1]
        return "MAP_TYPE", out
    return "STRING_TYPE", str(value)


def table(value: Any) -> dict:
    if not isinstance(value, (list, tuple)):
        value = [value]
    headers: dict[Any, dict] = {}
    data = []
    for row in value:
        cols: list = []
        data.append(cols)
        if type(row).__name__ == "Row":
            row = row.asDict()
        if not isinstance(row, (list, tuple, dict)):
            row = [row]
        items = enumerate(row) if isinstance(row, (list, tuple)) else sorted(row.items())
        for name, col in items:
            col_type, col = convert(col)
            header = headers.get(name)
            if header is None:
                headers[name] = {"name": str(name), "type": col_type}
            elif col_type != "NULL_TYPE" and header["type"] != col_type:
                if header["type"] == "NULL_TYPE":
                    header["type"] = col_type
                else:
                    raise TypeError("table rows have different types")
            cols.append(col)
    return {"application/vnd.livy.table.v1+json": {
        "headers": [v for _, v in sorted(headers.items(), key=lambda kv: str(kv[0]))],
        "data": data}}


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if type(value).__name__ == "Row":
        return {k: jsonable(v) for k, v in value.asDict().items()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    return str(value)


def sanitize(value: Any) -> Any:
    """NaN/inf become null so every answer is strict JSON."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(v) for v in value]
    return value
