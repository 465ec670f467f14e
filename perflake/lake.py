"""The one I/O layer for lake tables: every read and write of a Delta table goes through here.

A table is named ``<layer>.<table>``; its path is ``<lake.root>/<layer>/<table>`` and the
checkpoint of the stream that writes it is ``<lake.root>/_checkpoints/<stream>``, both from
config, so the same job writes to the local filesystem, to HDFS or to a cluster's HDFS.

Spark does the writing and the pipeline's reads. ``SqlReader`` answers SQL on the tables by name
without Spark, for dashboards and the API (read-only; see its docstring).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from urllib.parse import urlparse

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StructType

from perflake.config import Config
from perflake.kafka import spark_options

LAYERS = ("bronze", "silver", "gold")


def table_path(config: Config, layer: str, table: str) -> str:
    if layer not in LAYERS:
        raise ValueError(f"unknown lake layer {layer!r}; expected one of {', '.join(LAYERS)}")
    return f"{config.lake.root}/{layer}/{table}"


def checkpoint_path(config: Config, stream: str) -> str:
    return f"{config.lake.root}/_checkpoints/{stream}"


def read_table(spark: SparkSession, config: Config, layer: str, table: str) -> DataFrame:
    return spark.read.format("delta").load(table_path(config, layer, table))


def read_kafka_stream(spark: SparkSession, config: Config, topics: list[str],
                      max_offsets_per_trigger: int | None = None) -> DataFrame:
    """Spark's own Kafka source over ``topics``, from the earliest offset on first start."""
    reader = (
        spark.readStream.format("kafka")
        .options(**spark_options(config))
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .option("includeHeaders", "true")
    )
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.load()


def append_stream(
    df: DataFrame,
    config: Config,
    layer: str,
    table: str,
    stream: str,
    available_now: bool = False,
    partition_by: list[str] | None = None,
) -> StreamingQuery:
    """Start a stream that appends ``df`` to ``layer.table`` with its own checkpoint.

    Delta's streaming sink commits each micro-batch once: a batch replayed after a crash
    (same batch id, from the checkpoint) is recognised and not written again.
    """
    writer = df.writeStream.format("delta").outputMode("append").queryName(stream)
    writer = writer.option("checkpointLocation", checkpoint_path(config, stream))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    return _with_trigger(writer, config, available_now).start(table_path(config, layer, table))


def foreach_batch_stream(
    df: DataFrame, config: Config, stream: str, process_batch: Callable[[DataFrame, int], None], available_now: bool = False
) -> StreamingQuery:
    """Start a stream that hands each micro-batch to ``process_batch(batch, batch_id)``."""
    writer = df.writeStream.foreachBatch(process_batch).queryName(stream)
    writer = writer.option("checkpointLocation", checkpoint_path(config, stream))
    return _with_trigger(writer, config, available_now).start()


def stream_id(spark: SparkSession, config: Config, stream: str) -> str:
    """The id of the query that owns ``stream``'s checkpoint: the same across restarts, new for a
    new checkpoint, so a Delta transaction id made from it and a batch id never collides with a
    deleted checkpoint's (whose batch ids restart at 0 and would be taken as already written)."""
    return json.loads(spark.read.text(f"{checkpoint_path(config, stream)}/metadata").first().value)["id"]


def read_stream(spark: SparkSession, config: Config, layer: str, table: str) -> DataFrame:
    """A Delta table as a streaming source (new commits only after the checkpoint)."""
    return spark.readStream.format("delta").load(table_path(config, layer, table))


def table_exists(spark: SparkSession, config: Config, layer: str, table: str) -> bool:
    """Whether the table's first commit exists. Asks the filesystem, because Delta caches a
    path's log and keeps answering 'no table' after another process has created it."""
    jvm = spark.sparkContext._jvm
    first_commit = jvm.org.apache.hadoop.fs.Path(f"{table_path(config, layer, table)}/_delta_log/{0:020d}.json")
    return first_commit.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(first_commit)


def ensure_table(spark: SparkSession, config: Config, layer: str, table: str, schema: StructType,
                 partition_by: list[str]) -> None:
    """Create the Delta table if it does not exist; add the columns ``schema`` has and it lacks."""
    from delta.tables import DeltaTable

    path = table_path(config, layer, table)
    if not table_exists(spark, config, layer, table):
        from delta.exceptions import DeltaConcurrentModificationException

        try:
            spark.createDataFrame([], schema).write.format("delta").mode("append").partitionBy(*partition_by).save(path)
            return
        except DeltaConcurrentModificationException:
            if not table_exists(spark, config, layer, table):
                raise
            # another job created it first: carry on and add any columns it lacks
    existing = set(DeltaTable.forPath(spark, path).toDF().schema.fieldNames())
    missing = [field for field in schema.fields if field.name not in existing]
    if missing:
        columns = ", ".join(f"`{field.name}` {field.dataType.simpleString()}" for field in missing)
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({columns})")


def insert_new(
    df: DataFrame, config: Config, layer: str, table: str, keys: list[str], partition_column: str,
    partitions: list | None = None, target_filter: Column | None = None,
) -> None:
    """Insert the rows whose keys the table does not hold yet (MERGE ... WHEN NOT MATCHED INSERT).

    Only stored rows in ``partitions`` and meeting ``target_filter`` (on ``t.<column>``, with
    literals, so Delta skips files by their statistics) are compared; the caller vouches that no
    stored row outside them can share a key with ``df``. Idempotent: replaying the same rows
    inserts nothing the second time.
    """
    _merge(df, config, layer, table, keys, partition_column, partitions, update=False, target_filter=target_filter)


def upsert(df: DataFrame, config: Config, layer: str, table: str, keys: list[str], partition_column: str) -> None:
    """Replace the rows with these keys and insert the new ones (null keys match null keys).

    Idempotent when ``df`` is recomputed from the same inputs, as gold's rows are.
    """
    _merge(df, config, layer, table, keys, partition_column, None, update=True)


def append(df: DataFrame, config: Config, layer: str, table: str, txn: tuple[str, int]) -> None:
    """Append; Delta skips the write if this (app id, version) already committed, so a
    micro-batch replayed after a crash is not appended twice."""
    app_id, version = txn
    writer = df.write.format("delta").mode("append").option("txnAppId", app_id).option("txnVersion", version)
    writer.save(table_path(config, layer, table))


def replace_rows(df: DataFrame, config: Config, layer: str, table: str, matching: dict[str, str],
                 partition_by: list[str], from_dates: dict[str, date] | None = None) -> None:
    """Replace the table's rows whose columns hold the values of ``matching`` (and whose date columns of
    ``from_dates`` are on or after theirs) by ``df``, creating the table.

    One Delta commit (``replaceWhere``): a failed write leaves the rows as they were, and rows
    not matching are untouched. A row of ``df`` that does not match is refused by Delta, so a
    rebuild cannot spill into another slice's rows.
    """
    condition = _slice(matching, from_dates)
    writer = df.write.format("delta").mode("overwrite").option("replaceWhere", condition).partitionBy(*partition_by)
    writer.save(table_path(config, layer, table))


def read_rows(spark: SparkSession, config: Config, layer: str, table: str, matching: dict[str, str],
              from_dates: dict[str, date] | None = None) -> DataFrame:
    """The table's rows in the slice ``replace_rows`` writes with these arguments."""
    return read_table(spark, config, layer, table).where(_slice(matching, from_dates))


def _slice(matching: dict[str, str], from_dates: dict[str, date] | None) -> str:
    """The SQL condition on the columns of ``matching`` holding its values (a quote in a value doubled), and on those
    of ``from_dates`` being on or after theirs."""
    equal = [f"`{column}` = '" + value.replace("'", "''") + "'" for column, value in matching.items()]
    return " AND ".join(equal + [f"`{column}` >= DATE'{day.isoformat()}'" for column, day in (from_dates or {}).items()])


def _merge(
    df: DataFrame, config: Config, layer: str, table: str, keys: list[str], partition_column: str, partitions: list | None,
    update: bool, target_filter: Column | None = None,
) -> None:
    from delta.tables import DeltaTable

    if partitions is None:
        partitions = [row[0] for row in df.select(partition_column).distinct().collect()]
    if not partitions:
        return
    # literal partition values let Delta read only the partitions this batch touches
    literals = ", ".join(f"DATE'{value.isoformat()}'" for value in sorted(partitions))
    condition = F.expr(" AND ".join([f"t.`{partition_column}` IN ({literals})"] + [f"t.`{key}` <=> s.`{key}`" for key in keys]))
    if target_filter is not None:
        condition = condition & target_filter
    merge = DeltaTable.forPath(df.sparkSession, table_path(config, layer, table)).alias("t").merge(df.alias("s"), condition)
    if update:
        merge = merge.whenMatchedUpdateAll()
    merge.whenNotMatchedInsertAll().execute()


def _with_trigger(writer, config: Config, available_now: bool):
    if available_now:
        return writer.trigger(availableNow=True)
    return writer.trigger(processingTime=f"{config.pipeline.trigger_interval_s} seconds")


def register_tables(spark: SparkSession, config: Config, layer: str, tables: list[str]) -> None:
    """Name the tables in the metastore as ``<layer>.<table>`` (SQL, JDBC, notebooks); a no-op
    without one. The data stays where it is: the metastore only points at the Delta path."""
    if not config.metastore.enabled:
        return
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {layer} LOCATION '{config.lake.root}/{layer}'")
    for table in tables:
        spark.sql(f"CREATE TABLE IF NOT EXISTS {layer}.{table} USING DELTA LOCATION '{table_path(config, layer, table)}'")


def list_webhdfs(config: Config, uri: str) -> list[tuple[str, int]]:
    """(path, size in bytes) of every file below an ``hdfs://`` URI, listed through WebHDFS."""
    from hdfs import InsecureClient

    client = InsecureClient(config.hdfs.webhdfs_url, user=config.hdfs.webhdfs_user)
    return [
        (f"{root}/{name}", status["length"])
        for (root, _), _, files in client.walk(urlparse(uri).path, status=True)
        for name, status in files
    ]


TABLE_REFERENCE = re.compile(r"\b(bronze|silver|gold)\.([A-Za-z_]\w*)\b", re.IGNORECASE)


class SqlReader:
    """SQL on the lake's tables by name (``SELECT ... FROM gold.<table>``), answered in this process.

    A Spark SQL query costs 300-700 ms of planning and scheduling however small its answer
    (docs/benchmarks.md): too slow for a dashboard of a dozen panels. This reader runs the query
    with delta-rs (the ``deltalake`` package: the Delta log read natively, the query run by Apache
    DataFusion in-process, its SQL dialect), on the same paths, local or ``hdfs://``. It never writes.

    Each query first brings every table it names to its latest commit (reading only the log
    entries added since the last query), so answers follow the streams; a query sees whole
    commits, never a micro-batch half written. Keep one reader per process: it keeps each
    table's log between queries.
    """

    def __init__(self, config: Config):
        self.config = config
        self._tables: dict[tuple[str, str], object] = {}

    def query(self, sql: str):
        """The result of ``sql`` as a pandas DataFrame."""
        import pyarrow
        from deltalake import QueryBuilder

        local_sql, tables = self.unqualified(sql)
        if not tables:
            raise ValueError("the query names no lake table: write FROM <layer>.<table>, e.g. gold.metric_rollups_1m")
        builder = QueryBuilder()
        for layer, table in tables:
            builder.register(f"{layer}__{table}", self.table(layer, table))
        return pyarrow.table(builder.execute(local_sql).read_all()).to_pandas()

    @staticmethod
    def unqualified(sql: str) -> tuple[str, list[tuple[str, str]]]:
        """``sql`` with each ``<layer>.<table>`` outside string literals renamed ``<layer>__<table>``
        (DataFusion would take the layer for a schema), and the tables it names."""
        tables: list[tuple[str, str]] = []

        def rename(match: re.Match) -> str:
            table = (match.group(1).lower(), match.group(2))
            if table not in tables:
                tables.append(table)
            return f"{table[0]}__{table[1]}"

        # the text between single quotes is a literal: every odd piece of the split ('' included)
        pieces = sql.split("'")
        return "'".join(piece if i % 2 else TABLE_REFERENCE.sub(rename, piece) for i, piece in enumerate(pieces)), tables

    def table(self, layer: str, table: str):
        """The Delta table at its latest commit."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        key = (layer, table)
        if key in self._tables:
            self._tables[key].update_incremental()
            return self._tables[key]
        path = table_path(self.config, layer, table)
        try:
            self._tables[key] = DeltaTable(path)
        except TableNotFoundError:
            raise ValueError(f"{layer}.{table} does not exist: no Delta table at {path}") from None
        return self._tables[key]
