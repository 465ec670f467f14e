"""The smoke pipeline: JSON messages -> Kafka -> Spark Structured Streaming -> Delta.

It proves the platform end to end (broker, Spark's Kafka source, Delta, the lake on the
local filesystem or HDFS) and seeds the main job until the medallion pipeline replaces it.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from perflake import lake
from perflake.config import Config
from perflake.schemas import load_table_schema

LAYER, TABLE, STREAM = "bronze", "smoke_events", "smoke_events_ingest"
TOPIC_KEY = "smoke"
_SERVICES = ("ws2-protocol-engine", "ws3-account-management", "ws4-market-integration")
_METRICS = ("response_time_ms", "throughput_rps", "error_rate")


@dataclass(frozen=True)
class SmokeResult:
    run_id: str
    produced: int
    landed: int
    table_rows: int
    table_path: str


def smoke_events(run_id: str, count: int, start_at: datetime, seed: int = 0) -> list[dict]:
    """``count`` sample metric events of one run, one second apart from ``start_at``."""
    rng = random.Random(seed)
    return [
        {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "run_id": run_id,
            "seq": seq,
            "service": rng.choice(_SERVICES),
            "metric": rng.choice(_METRICS),
            "value": round(rng.uniform(0, 250), 3),
            "event_at": (start_at + timedelta(seconds=seq)).astimezone(timezone.utc).isoformat(),
        }
        for seq in range(count)
    ]


def parse_smoke_messages(messages: DataFrame, payload_ddl: str) -> DataFrame:
    """Kafka source rows -> smoke_events rows (payload fields plus Kafka coordinates)."""
    payload = F.from_json(F.col("value").cast("string"), payload_ddl)
    return messages.select(
        payload.alias("payload"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_at"),
    ).select("payload.*", "kafka_topic", "kafka_partition", "kafka_offset", "kafka_at",
             F.current_timestamp().alias("ingested_at"))


def ingest_available(spark: SparkSession, config: Config) -> None:
    """Read everything the smoke topic holds now into bronze.smoke_events, then stop."""
    schema = load_table_schema(LAYER, TABLE)
    messages = lake.read_kafka_stream(spark, config, [config.topic(TOPIC_KEY)])
    query = lake.append_stream(parse_smoke_messages(messages, schema["payload_ddl"]), config, LAYER, TABLE, STREAM,
                               available_now=True)
    query.awaitTermination()


def count_run(spark: SparkSession, config: Config, run_id: str) -> tuple[int, int]:
    """(rows of this run, rows in the table)."""
    table = lake.read_table(spark, config, LAYER, TABLE)
    counts = table.agg(F.count("*").alias("total"), F.sum((F.col("run_id") == run_id).cast("int")).alias("run")).first()
    return int(counts["run"] or 0), int(counts["total"])


def run_smoke(spark: SparkSession, config: Config, count: int, say=print) -> SmokeResult:
    """Produce ``count`` events of a new run, ingest them, and count what landed."""
    from perflake.kafka import ensure_topics, produce_json

    topic = config.topic(TOPIC_KEY)
    run_id = uuid.uuid4().hex[:12]
    ensure_topics(config, [topic])
    produced = produce_json(config, topic, smoke_events(run_id, count, datetime.now(timezone.utc), seed=int(run_id, 16)),
                            "event_id")
    say(f"produced {produced} events of run {run_id} to Kafka topic {topic} (acks=all)")
    ingest_available(spark, config)
    landed, total = count_run(spark, config, run_id)
    return SmokeResult(run_id, produced, landed, total, lake.table_path(config, LAYER, TABLE))
