"""Bronze: every Kafka message as it came, with where and when it was read. Never parses,
so it never fails on a bad payload; silver sorts good from bad."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

TABLE = "events"
PARTITION_COLUMN = "ingest_date"


def bronze_rows(messages: DataFrame) -> DataFrame:
    """Spark Kafka source rows -> bronze.events rows (one per message)."""
    return messages.select(
        "key",
        "value",
        "headers",
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_at"),
        # a micro-batch's timestamp: the same again when a failed batch is replayed
        F.current_timestamp().alias("ingested_at"),
        F.to_date(F.current_timestamp()).alias(PARTITION_COLUMN),
    )
