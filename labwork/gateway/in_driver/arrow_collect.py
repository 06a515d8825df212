"""Spark's own Arrow record batches of a result, collected under a byte bound (in the driver).

`collect_batches` is what `DataFrame.toArrow()` / `toPandas()` do before any pandas is made
(`Dataset.collectAsArrowToPython`: the JVM sends the batches out of order, then their order),
counting the bytes as they arrive: past the bound it stops reading, cancels the statement's Spark
jobs and raises `TooLarge` with how much had arrived. `spark_meta` is what the kernel needs to make
of those batches exactly the frame `toPandas()` makes (pyspark's own converters, fed the Spark
schema and the session's time zone and struct mode).

`reliable_estimate` is Spark's optimizer's size of a plan, only where it does not overstate: over a
scan with projections, limits and samples it holds, but a filter, an aggregate or a join keeps
(without cost-based statistics) the size of its input, so `WHERE id < 10` over a billion rows
would be "8 GB". Those plans get None, and the measured bound alone guards them.
"""
from __future__ import annotations

import json
from typing import Any

# logical plan nodes whose size estimate is not larger than what they return (Spark 3.5 / 4.x)
_FAITHFUL_NODES = frozenset({
    "Project", "GlobalLimit", "LocalLimit", "Limit", "Offset", "Tail", "Sample", "Range",
    "LogicalRelation", "LogicalRDD", "LocalRelation", "HiveTableRelation", "DataSourceV2Relation",
    "DataSourceV2ScanRelation", "InMemoryRelation", "SubqueryAlias", "View", "Repartition",
    "RepartitionByExpression", "RebalancePartitions", "Sort", "ResolvedHint", "OneRowRelation",
})
# what toPandas() reads from the session to convert (pyspark's PandasConversionMixin._to_pandas)
TIMEZONE_CONF = "spark.sql.session.timeZone"
STRUCT_MODE_CONF = "spark.sql.execution.pandas.structHandlingMode"
LARGE_TYPES_CONF = "spark.sql.execution.arrow.useLargeVarTypes"
META_KEY = b"labwork.spark"   # the Arrow schema's metadata entry the kernel converts with


class TooLarge(Exception):
    """More bytes arrived than the bound; `seen` of them (and `rows` rows) before it stopped."""

    def __init__(self, seen: int, rows: int) -> None:
        super().__init__(f"more than the bound after {seen} bytes")
        self.seen, self.rows = seen, rows


def _plan_nodes(plan: Any) -> list[str]:
    """Class names of every node of a JVM logical plan."""
    names, todo = [], [plan]
    while todo:
        node = todo.pop()
        names.append(node.getClass().getSimpleName())
        children = node.children()
        todo.extend(children.apply(i) for i in range(children.size()))
    return names


def reliable_estimate(df: Any) -> int | None:
    """Spark's size estimate of `df`'s result in bytes where it can be trusted, else None."""
    try:
        qe = df._jdf.queryExecution()
        plan = qe.optimizedPlan()
        stats = plan.stats()
        size = int(str(stats.sizeInBytes()))
        if all(name in _FAITHFUL_NODES for name in _plan_nodes(plan)):
            return size
        spark = df.sparkSession
        cbo = str(spark.conf.get("spark.sql.cbo.enabled", "false")).lower() == "true"
        # with the cost-based optimizer on and every leaf's row count known, filters and joins are
        # estimated from column statistics: Spark's own number, no longer its input's size
        if cbo and stats.rowCount().isDefined() and _leaves_have_row_counts(plan):
            return size
        return None
    except Exception:  # noqa: BLE001 - an estimate is optional
        return None


def _leaves_have_row_counts(plan: Any) -> bool:
    todo = [plan]
    while todo:
        node = todo.pop()
        children = node.children()
        if children.size() == 0:
            if not node.stats().rowCount().isDefined():
                return False
        todo.extend(children.apply(i) for i in range(children.size()))
    return True


def spark_meta(df: Any) -> dict[str, Any]:
    """Spark's schema and the session's conversion settings, as toPandas() reads them."""
    tz, mode, large = df.sparkSession._jconf.getConfs([TIMEZONE_CONF, STRUCT_MODE_CONF,
                                                        LARGE_TYPES_CONF])
    return {"schema": json.loads(df.schema.json()), "timezone": tz, "struct_mode": mode,
            "large_types": str(large).lower() == "true"}


def empty_schema(df: Any, meta: dict[str, Any]) -> Any:
    """The Arrow schema of `df` with no rows (what toPandas() uses for an empty result)."""
    from pyspark.sql.pandas.types import to_arrow_schema
    return to_arrow_schema(df.schema, timezone="UTC", prefers_large_types=meta["large_types"])


class _BoundedCollect:
    """pyspark's ArrowCollectSerializer protocol (batches out of order, then their order, or -1
    and the JVM's error), counting bytes against `cap` as the batches arrive."""

    def __init__(self, cap: int) -> None:
        self.cap, self.seen, self.rows = cap, 0, 0

    def load_stream(self, stream: Any) -> list[Any]:
        import pyarrow as pa
        from pyspark.serializers import UTF8Deserializer, read_int
        batches = []
        for batch in pa.ipc.open_stream(stream):
            self.seen += batch.nbytes
            self.rows += batch.num_rows
            if self.seen > self.cap:
                raise TooLarge(self.seen, self.rows)
            batches.append(batch)
        num = read_int(stream)
        if num == -1:
            raise RuntimeError(UTF8Deserializer().loads(stream))
        return [batches[read_int(stream)] for _ in range(num)]


def collect_batches(df: Any, cap: int, group: str | None) -> list[Any]:
    """`df`'s Arrow record batches in order, as Spark made them; TooLarge past `cap` bytes."""
    from pyspark.errors.exceptions.captured import unwrap_spark_exception
    from pyspark.util import _load_from_socket
    sc = df.sparkSession.sparkContext
    port, secret, server = df._jdf.collectAsArrowToPython()
    reader = _BoundedCollect(cap)
    try:
        with _load_from_socket((port, secret), reader) as batches:
            pass
    except TooLarge:
        if group is not None:
            sc.cancelJobGroup(group)  # the rest of the result is not wanted
        try:
            server.getResult()
        except Exception:  # noqa: BLE001 - the JVM's side saw the connection close: expected
            pass
        raise
    with unwrap_spark_exception():
        server.getResult()
    return batches
