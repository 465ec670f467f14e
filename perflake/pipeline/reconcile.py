"""Reconciliation: for a time range, prove every message and event is accounted for, layer by layer.

1. Kafka -> bronze, per topic partition: the offsets whose Kafka timestamp falls in the range
   must each be in bronze exactly once (no missing, no repeated offsets).
2. bronze -> silver: each event of those bronze rows (a message may hold a batch) is in a
   silver table (by its Kafka coordinates and batch index), in silver.quarantine, or is a
   repeat of an event_id silver already holds.
3. silver -> gold: for whole minutes inside the range (by event time), gold's sample counts
   equal the silver rows they roll up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from perflake import lake
from perflake.config import Config
from perflake.contracts import silver_tables
from perflake.kafka import client_settings
from perflake.pipeline import silver
from perflake.pipeline.streams import QUARANTINE_TABLE, family_topics

# gold table -> (silver table, gold column that counts silver rows)
GOLD_COUNTS = {"metric_rollups_1m": ("metrics", "n_samples"), "market_data_latency_1m": ("market_data", "n_samples")}


@dataclass(frozen=True)
class Check:
    step: str
    scope: str
    expected: int
    found: int
    detail: str = ""
    repeated: int = 0  # rows found more than once

    @property
    def is_ok(self) -> bool:
        return self.expected == self.found and self.repeated == 0


def kafka_offsets(config: Config, topics: list[str], since: datetime, until: datetime) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> [first, end) offsets of the messages timestamped in [since, until)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**client_settings(config), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        ends = consumer.end_offsets(partitions)

        def offset_at(moment: datetime) -> dict:
            found = consumer.offsets_for_times({tp: int(moment.timestamp() * 1000) for tp in partitions})
            return {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in partitions}

        first, last = offset_at(since), offset_at(until)
        return {(tp.topic, tp.partition): (first[tp], last[tp]) for tp in partitions}
    finally:
        consumer.close()


def kafka_to_bronze(bronze: DataFrame, offsets: dict[tuple[str, int], tuple[int, int]]) -> list[Check]:
    checks = []
    ranges = [(t, p, a, b) for (t, p), (a, b) in offsets.items() if b > a]
    if not ranges:
        return checks
    wanted = bronze.sparkSession.createDataFrame(ranges, "topic STRING, part INT, first_offset BIGINT, end_offset BIGINT")
    in_range = bronze.kafka_offset.between(wanted["first_offset"], wanted["end_offset"] - 1)
    joined = bronze.join(wanted, (bronze.kafka_topic == wanted["topic"]) & (bronze.kafka_partition == wanted["part"]) & in_range)
    counted = joined.groupBy("kafka_topic", "kafka_partition").agg(
        F.count("*").alias("rows"), F.countDistinct("kafka_offset").alias("offsets"))
    stats = {(r.kafka_topic, r.kafka_partition): r for r in counted.collect()}
    for topic, partition, first, stop in ranges:
        row = stats.get((topic, partition))
        rows, distinct = (row.rows, row.offsets) if row else (0, 0)
        checks.append(Check("kafka -> bronze", f"{topic}[{partition}]", stop - first, distinct, f"offsets {first}..{stop - 1}",
                            rows - distinct))
    return checks


def bronze_to_silver(spark: SparkSession, config: Config, contracts, in_range: DataFrame) -> Check:
    coordinates = ["kafka_topic", "kafka_partition", "kafka_offset", "kafka_batch_index"]
    stored = None
    for table in silver_tables(contracts):
        frame = lake.read_table(spark, config, "silver", table).select(*coordinates, "event_id")
        stored = frame if stored is None else stored.unionByName(frame)
    quarantined = lake.read_table(spark, config, "silver", QUARANTINE_TABLE).select(*coordinates)
    messages = silver.split_events(in_range).select(*coordinates,
                                                    F.get_json_object("_event_text", "$.event_id").alias("event_id"))
    unaccounted = (
        messages.join(stored.select(*coordinates), coordinates, "left_anti")
        .join(quarantined, coordinates, "left_anti")
        .join(stored.select("event_id").distinct(), "event_id", "left_anti")
    )
    total, missing = messages.count(), unaccounted.count()
    sample = [f"{r.kafka_topic}[{r.kafka_partition}]@{r.kafka_offset}" for r in unaccounted.limit(5).collect()]
    return Check("bronze -> silver", "all event tables + quarantine", total, total - missing,
                 f"unaccounted: {', '.join(sample)}" if missing else "")


def silver_to_gold(spark: SparkSession, config: Config, since: datetime, until: datetime) -> list[Check]:
    checks = []
    start, stop = F.date_trunc("minute", F.lit(since)), F.date_trunc("minute", F.lit(until))
    for gold_table, (silver_table, measure) in GOLD_COUNTS.items():
        silver = lake.read_table(spark, config, "silver", silver_table)
        silver = silver.filter((F.col("event_at") >= start) & (F.col("event_at") < stop))
        rolled = lake.read_table(spark, config, "gold", gold_table)
        rolled = rolled.filter((F.col("window_at") >= start) & (F.col("window_at") < stop))
        found = rolled.agg(F.coalesce(F.sum(measure), F.lit(0))).first()[0]
        checks.append(Check("silver -> gold", f"gold.{gold_table}.{measure}", silver.count(), int(found),
                            "whole minutes in the range"))
    return checks


def reconcile(spark: SparkSession, config: Config, contracts, since: datetime, until: datetime) -> list[Check]:
    offsets = kafka_offsets(config, family_topics(config, contracts), since, until)
    bronze = lake.read_table(spark, config, "bronze", "events")
    checks = kafka_to_bronze(bronze, offsets)
    in_range = bronze.filter((F.col("kafka_at") >= F.lit(since)) & (F.col("kafka_at") < F.lit(until)))
    checks.append(bronze_to_silver(spark, config, contracts, in_range))
    return checks + silver_to_gold(spark, config, since, until)
