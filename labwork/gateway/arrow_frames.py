"""Spark's Arrow batches to the pandas frame `toPandas()` makes, in the kernel.

The driver sends Spark's own record batches (no pandas in the driver) with, in the Arrow schema's
metadata, Spark's schema and the session's time zone and struct mode (`in_driver/arrow_collect.py`
`spark_meta`). This module feeds them to the function `DataFrame.toPandas()` itself calls,
pyspark's `_convert_arrow_table_to_pandas` (its per-type converters: time zones, nullable ints,
decimals, dates, nested types), so the frame and its dtypes are `toPandas()`'s. pyspark is only
imported, never started (no JVM): it is installed beside sparkmagic (labwork's `spark` extra).

What it relies on in pyspark (pinned in tests/gateway/test_gateway_arrow.py):
`pyspark.sql.pandas.conversion._convert_arrow_table_to_pandas(table, schema, *, timezone,
struct_handling_mode, date_as_object)` and `StructType.fromJson`.
"""
from __future__ import annotations

import json
from typing import Any

META_KEY = b"labwork.spark"   # the same key as in_driver/arrow_collect.py


def read_stream(source: Any) -> Any:
    """The Arrow table of an IPC stream read from a file-like `source` as it arrives."""
    import pyarrow as pa
    return pa.ipc.open_stream(source).read_all()


def to_pandas(table: Any) -> Any:
    """The frame `toPandas()` (Arrow enabled) makes of the same rows, from the driver's table."""
    meta = (table.schema.metadata or {}).get(META_KEY)
    if meta is None:  # not Spark's batches (an older driver): pandas' own metadata holds the types
        return table.to_pandas()
    from pyspark.sql.pandas.conversion import _convert_arrow_table_to_pandas
    from pyspark.sql.types import StructType
    spark = json.loads(meta)
    return _convert_arrow_table_to_pandas(
        table.replace_schema_metadata(None), StructType.fromJson(spark["schema"]),
        timezone=spark.get("timezone"), struct_handling_mode=spark.get("struct_mode"),
        date_as_object=True)
