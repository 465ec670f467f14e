"""Silver: parse bronze messages against the event contracts, validate, quarantine, type.

A Kafka message holds one envelope (a JSON object) or a batch of them (a JSON array, as the
agents send: many events per message is what lets one Python process produce tens of
thousands of events a second). Each event of a message is a row with its position in the
message, ``kafka_batch_index``.

All functions here are DataFrame -> DataFrame with explicit parameters. Every event ends in
exactly one place: a silver table (valid) or ``silver.quarantine`` with every reason it
failed, its raw bytes and its Kafka coordinates. A message that is not JSON, or an empty
batch, is quarantined whole. Nothing is dropped, except a second copy of an event already
seen (same ``event_id``, and so the same ``event_at``), which is the point of silver.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from perflake.contracts import EventContract, FieldSpec, envelope_text_ddl, load_envelope, required_envelope_fields

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# The envelope of schemas/events/envelope.v1.json, every leaf read as text first so that a
# wrong type is reported as such instead of turning into a silent null.
ENVELOPE_TEXT_DDL = envelope_text_ddl(load_envelope())
REQUIRED_ENVELOPE_FIELDS = required_envelope_fields(load_envelope())
MESSAGE_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_at", "ingested_at")  # bronze's, per message
KAFKA_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_batch_index", "kafka_at", "ingested_at")  # per event
ENVELOPE_COLUMNS = ("event_id", "schema_version", "event_type", "service", "component", "host", "instance", "sequence",
                    "event_at", "tags")


@dataclass(frozen=True)
class ValidationLimits:
    max_event_bytes: int
    max_future_s: float
    late_after_s: float


def split_events(bronze: DataFrame) -> DataFrame:
    """Bronze rows (one per message) -> one row per event: ``raw_value`` (its bytes),
    ``kafka_batch_index`` (its position in the message), ``batch_size`` (events in the
    message; 0 for an empty batch, which stays as one row so that it is quarantined)."""
    # Parsed once, and the message's own bytes are carried only where they are the event:
    # an exploded row that kept a copy of a 500 KB batch would cost that much per event.
    parsed = bronze.select(*MESSAGE_COLUMNS, "value", F.from_json(F.col("value").cast("string"), "ARRAY<STRING>").alias("_batch"))
    is_batch = F.col("_batch").isNotNull()
    events = parsed.select(
        *MESSAGE_COLUMNS,
        is_batch.alias("_is_batch"),
        F.when(is_batch, F.size("_batch")).otherwise(F.lit(1)).alias("batch_size"),
        F.when(~is_batch | (F.size("_batch") == 0), F.col("value")).alias("_whole"),
        F.posexplode_outer(F.when(is_batch, F.col("_batch")).otherwise(F.array(F.col("value").cast("string"))))
        .alias("_index", "_event_text"),
    )
    return events.select(
        *MESSAGE_COLUMNS,
        "batch_size",
        "_event_text",
        # a single message keeps its exact bytes (even invalid UTF-8); an empty batch is itself
        F.when(F.col("_is_batch") & F.col("_event_text").isNotNull(), F.encode("_event_text", "UTF-8"))
        .otherwise(F.col("_whole")).alias("raw_value"),
        F.coalesce("_index", F.lit(0)).alias("kafka_batch_index"),
    )


def parse_envelopes(bronze: DataFrame) -> DataFrame:
    """Bronze rows -> one row per event with the envelope's fields typed (nulls where invalid)."""
    events = split_events(bronze)
    text = F.col("_event_text")
    # from_json turns some malformed input into a struct of nulls; json_object_keys is null
    # for anything but a valid JSON object, so only objects get an envelope
    envelope = F.when(F.json_object_keys(text).isNotNull(), F.from_json(text, ENVELOPE_TEXT_DDL))
    return events.select(
        "raw_value",
        F.octet_length("raw_value").alias("event_bytes"),
        "batch_size",
        envelope.alias("envelope"),
        *KAFKA_COLUMNS,
    ).select(
        "*",
        F.col("envelope.event_id").alias("event_id"),
        F.expr("try_cast(envelope.schema_version AS INT)").alias("schema_version"),
        F.col("envelope.event_type").alias("event_type"),
        F.col("envelope.source.service").alias("service"),
        F.col("envelope.source.component").alias("component"),
        F.col("envelope.source.host").alias("host"),
        F.col("envelope.source.instance").alias("instance"),
        F.expr("try_cast(envelope.source.sequence AS BIGINT)").alias("sequence"),
        F.try_to_timestamp(F.col("envelope.event_at")).alias("event_at"),
        F.col("envelope.tags").alias("tags"),
        F.col("envelope.payload").alias("payload"),
    )


def envelope_problems(parsed: DataFrame, limits: ValidationLimits, known: list[tuple[str, int]]) -> DataFrame:
    """Adds ``problems``: every reason the envelope is invalid (empty when it is fine). The parsed
    ``envelope`` is then replaced by the two fields the quarantine reports as the producer wrote
    them, ``envelope_event_type`` and ``envelope_schema_version``."""
    has_envelope = F.col("envelope").isNotNull()
    checks = [
        (F.col("batch_size") == 0, F.lit("an empty batch: a JSON array with no events")),
        ((F.col("batch_size") > 0) & F.col("envelope").isNull(), F.lit("not a JSON object")),
        (
            F.col("event_bytes") > limits.max_event_bytes,
            F.format_string(f"event is %d bytes; the limit is {limits.max_event_bytes}", F.col("event_bytes")),
        ),
    ]
    checks += [(has_envelope & F.col(f"envelope.{name}").isNull(),
                F.lit(f"envelope.{name} is missing")) for name in REQUIRED_ENVELOPE_FIELDS]
    present = lambda name: has_envelope & F.col(f"envelope.{name}").isNotNull()  # noqa: E731
    checks += [
        (present("event_id") & ~F.col("event_id").rlike(UUID_PATTERN), F.lit("envelope.event_id is not a UUID")),
        (present("schema_version") & F.col("schema_version").isNull(), F.lit("envelope.schema_version must be an integer")),
        (present("source.sequence") & F.col("sequence").isNull(), F.lit("envelope.source.sequence must be an integer")),
        (present("event_at") & F.col("event_at").isNull(), F.lit("envelope.event_at is not an ISO-8601 time")),
        (
            F.col("event_at") > F.col("ingested_at") + F.expr(f"make_dt_interval(0, 0, 0, {limits.max_future_s})"),
            F.format_string(f"envelope.event_at is more than {limits.max_future_s:.0f}s in the future: %s",
                            F.col("envelope.event_at")),
        ),
        # the payload field arrives as text: an object's raw JSON, or a string's content
        (present("payload") & F.json_object_keys("payload").isNull(), F.lit("envelope.payload is not a JSON object")),
    ]
    known_key = F.concat_ws(".v", F.col("event_type"), F.col("schema_version").cast("string"))
    known_keys = [f"{event_type}.v{version}" for event_type, version in known]
    checks.append(
        (
            present("event_type") & F.col("schema_version").isNotNull() & ~known_key.isin(known_keys),
            F.format_string("unknown event type %s version %d", F.col("event_type"), F.col("schema_version")),
        )
    )
    # dropped once checked: every later pass (one per contract) would otherwise carry it
    return parsed.select(
        "*",
        _reasons(checks).alias("problems"),
        F.col("envelope.event_type").alias("envelope_event_type"),
        F.col("envelope.schema_version").alias("envelope_schema_version"),
    ).drop("envelope")


def field_checks(field: FieldSpec, text: Column, typed: Column) -> list[tuple[Column, Column]]:
    """(failed, reason) pairs for one payload field of a contract."""
    label = f"payload.{field.name}"
    checks = []
    if field.is_required:
        checks.append((text.isNull(), F.lit(f"{label} is missing")))
    checks.append((text.isNotNull() & typed.isNull(), F.format_string(f"{label} must be {field.json_type}, got %s", text)))
    if field.enum is not None:
        checks.append((~typed.isin(list(field.enum)),
                       F.format_string(f"{label} is '%s'; expected one of {', '.join(field.enum)}", typed)))
    bounds = [
        (field.minimum, lambda v: typed < v, "below the minimum"),
        (field.exclusive_minimum, lambda v: typed <= v, "not above"),
        (field.maximum, lambda v: typed > v, "above the maximum"),
        (field.exclusive_maximum, lambda v: typed >= v, "not below"),
    ]
    for bound, failed, words in bounds:
        if bound is not None:
            checks.append((failed(bound), F.format_string(f"{label} = %s is {words} {bound}", typed.cast("string"))))
    if field.max_length is not None:
        checks.append((F.length(typed) > field.max_length, F.lit(f"{label} is longer than {field.max_length} characters")))
    if field.pattern is not None:
        checks.append((~typed.rlike(field.pattern), F.lit(f"{label} does not match {field.pattern}")))
    return checks


def type_payloads(envelopes: DataFrame, contract: EventContract, limits: ValidationLimits) -> DataFrame:
    """Rows of one contract (valid envelope) -> typed payload columns plus ``problems``."""
    rows = envelopes.filter(
        (F.col("event_type") == contract.event_type) & (F.col("schema_version") == contract.version) & (F.size("problems") == 0)
    )
    rows = rows.withColumn("_text", F.from_json("payload", contract.raw_payload_ddl())).withColumn(
        "_typed", F.from_json("payload", contract.payload_ddl())
    )
    checks = [check for field in contract.fields
              for check in field_checks(field, F.col(f"_text.`{field.name}`"), F.col(f"_typed.`{field.name}`"))]
    lateness = F.col("ingested_at").cast("double") - F.col("event_at").cast("double")
    return rows.select(
        "*",
        *[F.col(f"_typed.`{field.name}`").alias(field.name) for field in contract.fields],
        F.to_date("event_at").alias("event_date"),
        lateness.alias("lateness_s"),
        (lateness > limits.late_after_s).alias("is_late"),
    ).withColumn("problems", _reasons(checks)).drop("_text", "_typed")


def silver_rows(typed: DataFrame, contract: EventContract) -> DataFrame:
    """Valid typed rows -> the silver table's columns, one row per event_id (first by Kafka position)."""
    valid = typed.filter(F.size("problems") == 0)
    first = Window.partitionBy("event_id").orderBy("ingested_at", "kafka_topic", "kafka_partition", "kafka_offset",
                                                   "kafka_batch_index")
    columns = [*ENVELOPE_COLUMNS, *(field.name for field in contract.fields), "event_date", "lateness_s", "is_late",
               *KAFKA_COLUMNS]
    return valid.withColumn("_copy", F.row_number().over(first)).filter("_copy = 1").select(*columns)


def quarantine_rows(rows: DataFrame) -> DataFrame:
    """Rows with problems -> silver.quarantine rows: every reason, the raw bytes, where they came from."""
    return rows.filter(F.size("problems") > 0).select(
        F.array_join("problems", "; ").alias("reason"),
        "problems",
        F.col("event_id"),
        F.col("envelope_event_type").alias("event_type"),
        F.col("envelope_schema_version").alias("schema_version"),
        "raw_value",
        F.make_valid_utf8(F.col("raw_value").cast("string")).alias("raw_text"),
        "event_bytes",
        *KAFKA_COLUMNS,
        F.current_timestamp().alias("quarantined_at"),
        F.to_date("ingested_at").alias("quarantine_date"),
    )


def _reasons(checks: list[tuple[Column, Column]]) -> Column:
    """The reasons whose check failed; a check that evaluates to null (nothing to check) passes."""
    return F.array_compact(F.array(*[F.when(failed, reason) for failed, reason in checks]))
