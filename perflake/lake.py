"""The one I/O layer for lake tables: every read and write of a Delta table goes through here.

A table is named ``<layer>.<table>``; its path is ``<lake.root>/<layer>/<table>`` and the
checkpoint of the stream that writes it is ``<lake.root>/_checkpoints/<stream>``, both from
config, so the same job writes to the local filesystem, to HDFS or to a cluster's HDFS.
"""

from __future__ import annotations

from urllib.parse import urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from perflake.config import Config

LAYERS = ("bronze", "silver", "gold")


def table_path(config: Config, layer: str, table: str) -> str:
    if layer not in LAYERS:
        raise ValueError(f"unknown lake layer {layer!r}; expected one of {', '.join(LAYERS)}")
    return f"{config.lake.root}/{layer}/{table}"


def checkpoint_path(config: Config, stream: str) -> str:
    return f"{config.lake.root}/_checkpoints/{stream}"


def read_table(spark: SparkSession, config: Config, layer: str, table: str) -> DataFrame:
    return spark.read.format("delta").load(table_path(config, layer, table))


def read_kafka_stream(spark: SparkSession, config: Config, topics: list[str], max_offsets_per_trigger: int | None = None) -> DataFrame:
    """Spark's own Kafka source over ``topics``, from the earliest offset on first start."""
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", config.kafka.bootstrap_servers)
        .option("kafka.security.protocol", config.kafka.security_protocol)
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .option("includeHeaders", "true")
    )
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.load()


def append_stream(
    df: DataFrame, config: Config, layer: str, table: str, stream: str, available_now: bool = False, partition_by: list[str] | None = None
) -> StreamingQuery:
    """Start a stream that appends ``df`` to ``layer.table`` with its own checkpoint."""
    writer = (
        df.writeStream.format("delta")
        .outputMode("append")
        .queryName(stream)
        .option("checkpointLocation", checkpoint_path(config, stream))
    )
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if available_now:
        writer = writer.trigger(availableNow=True)
    return writer.start(table_path(config, layer, table))


def list_webhdfs(config: Config, uri: str) -> list[tuple[str, int]]:
    """(path, size in bytes) of every file below an ``hdfs://`` URI, listed through WebHDFS."""
    from hdfs import InsecureClient

    client = InsecureClient(config.hdfs.webhdfs_url, user=config.hdfs.webhdfs_user)
    return [
        (f"{root}/{name}", status["length"])
        for (root, _), _, files in client.walk(urlparse(uri).path, status=True)
        for name, status in files
    ]
