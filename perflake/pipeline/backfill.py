"""The batch path: historical files -> bronze.events, as messages silver parses like Kafka's.

Formats:
- ``json``: JSON lines, one envelope (schemas/events/envelope.v1.json) per line, kept byte for byte.
- ``csv``: a header row; columns event_id, schema_version, event_type, source_service,
  source_host (and optionally source_component, source_instance, source_sequence), event_at,
  payload (a JSON object as text) and optionally tags (a JSON object as text).
- ``parquet``: the same columns, or ``source`` as a struct; ``payload`` and ``tags`` as text
  or struct/map.

Each file is one Delta commit whose transaction id is the file's SHA-256, so loading the same
file again (under any name) writes nothing. Rows carry ``kafka_topic = backfill:<file name>``
and their row number as ``kafka_offset``, so a quarantined row points back to its line.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructType

from perflake import lake
from perflake.config import Config
from perflake.files import file_digest
from perflake.pipeline import bronze

FORMATS = ("json", "csv", "parquet")
_SOURCE_FIELDS = ("service", "component", "host", "instance", "sequence")


class BackfillError(ValueError):
    """A file that cannot be loaded: unknown format, missing columns, unreadable."""


def envelope_json(rows: DataFrame) -> Column:
    """CSV/Parquet columns -> the envelope as JSON text (payload and tags kept as JSON objects)."""
    columns = set(rows.columns)
    required = {"event_id", "schema_version", "event_type", "event_at", "payload"}
    has_source = "source" in columns or {"source_service", "source_host"} <= columns
    missing = sorted(required - columns) + ([] if has_source else ["source (or source_service and source_host)"])
    if missing:
        raise BackfillError(f"missing column(s): {', '.join(missing)}")
    if "source" in columns:
        source = F.col("source")
    else:
        source = F.struct(*[F.col(f"source_{name}").alias(name) for name in _SOURCE_FIELDS if f"source_{name}" in columns])
    fields = [
        F.col("event_id").cast("string").alias("event_id"),
        F.expr("try_cast(schema_version AS INT)").alias("schema_version"),
        F.col("event_type").cast("string").alias("event_type"),
        source.alias("source"),
        F.col("event_at").cast("string").alias("event_at"),
        _as_json_value(rows, "payload").alias("payload"),
    ]
    if "tags" in columns:
        as_text = isinstance(rows.schema["tags"].dataType, StringType)
        tags = F.from_json("tags", "MAP<STRING, STRING>") if as_text else F.col("tags")
        fields.append(tags.alias("tags"))
    return F.to_json(F.struct(*fields))


def file_messages(spark: SparkSession, path: Path, file_format: str) -> DataFrame:
    """One file -> bronze rows (value = the envelope's JSON bytes, offset = row number)."""
    if file_format not in FORMATS:
        raise BackfillError(f"unknown format {file_format!r}; expected one of {', '.join(FORMATS)}")
    uri = path.resolve().as_uri()
    if file_format == "json":
        rows = spark.read.text(uri).select(F.col("value").cast("binary").alias("value"))
    else:
        if file_format == "csv":
            # RFC 4180: a quote inside a field is doubled (Spark's default escape is a backslash)
            table = spark.read.option("header", "true").option("escape", '"').option("multiLine", "true").csv(uri)
        else:
            table = spark.read.parquet(uri)
        rows = table.select(envelope_json(table).cast("binary").alias("value"))
    # the file's own order: monotonically_increasing_id follows it within and across splits
    numbered = rows.withColumn("kafka_offset", F.row_number().over(Window.orderBy(F.monotonically_increasing_id())) - 1)
    return numbered.select(
        F.lit(None).cast("binary").alias("key"),
        "value",
        F.lit(None).cast("array<struct<key:string,value:binary>>").alias("headers"),
        F.lit(f"backfill:{path.name}").alias("kafka_topic"),
        F.lit(0).alias("kafka_partition"),
        F.col("kafka_offset").cast("long"),
        F.lit(None).cast("timestamp").alias("kafka_at"),
        F.current_timestamp().alias("ingested_at"),
        F.current_date().alias(bronze.PARTITION_COLUMN),
    )


def load_file(spark: SparkSession, config: Config, path: Path, file_format: str) -> str:
    """Append one file to bronze.events once; returns its digest (the transaction id)."""
    if not path.is_file():
        raise BackfillError(f"no file {path}")
    digest = file_digest(path)
    lake.append(file_messages(spark, path, file_format), config, "bronze", bronze.TABLE, (f"backfill:{digest}", 0))
    return digest


def _as_json_value(rows: DataFrame, name: str) -> Column:
    """A payload column as a JSON value: structs stay objects, text is parsed; text that is
    not JSON stays a string, so silver quarantines it as 'payload is not a JSON object'."""
    if isinstance(rows.schema[name].dataType, StructType):
        return F.col(name)
    text = F.col(name).cast("string")
    as_string = F.try_variant_get(F.parse_json(F.to_json(F.array(text))), "$[0]", "variant")
    return F.coalesce(F.try_parse_json(text), as_string)
