"""The batch path on real Spark and Delta: files -> bronze (once per file) -> silver's parsing."""

import csv
import json
import re
from datetime import datetime, timezone

import pandas as pd
import pytest

from perflake import lake
from perflake.contracts import load_contracts
from perflake.events import sample_events
from perflake.pipeline.backfill import BackfillError, load_file
from perflake.pipeline.streams import ensure_bronze_table, start_silver
from tests.support import make_config

CONTRACTS = load_contracts()


def csv_row(event: dict) -> dict:
    return {
        "event_id": event["event_id"], "schema_version": event["schema_version"], "event_type": event["event_type"],
        "source_service": event["source"]["service"], "source_host": event["source"]["host"],
        "event_at": event["event_at"], "payload": json.dumps(event["payload"]), "tags": json.dumps(event["tags"]),
    }


def test_files_load_once_and_parse_like_kafka(spark, state_dir, tmp_path):
    config = make_config("local", state_dir, PERFLAKE__LAKE__ROOT=(state_dir / "lakes" / "backfill").as_uri())
    json_events, csv_events, parquet_events = (sample_events(200, datetime.now(timezone.utc), seed=s) for s in (41, 42, 43))
    lines = tmp_path / "export.jsonl"
    lines.write_text("".join(json.dumps(event) + "\n" for event in json_events))
    table = tmp_path / "export.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(csv_row(csv_events[0])))
        writer.writeheader()
        writer.writerows([csv_row(event) for event in csv_events])
        writer.writerow({**csv_row(csv_events[0]), "event_id": "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d", "payload": "{not json"})
    columnar = tmp_path / "export.parquet"
    pd.DataFrame([csv_row(event) for event in parquet_events]).to_parquet(columnar)

    ensure_bronze_table(spark, config)
    for path, file_format in [(lines, "json"), (table, "csv"), (columnar, "parquet"), (lines, "json")]:
        load_file(spark, config, path, file_format)
    renamed = tmp_path / "same-export-again.jsonl"
    renamed.write_bytes(lines.read_bytes())
    load_file(spark, config, renamed, "json")

    assert lake.read_table(spark, config, "bronze", "events").count() == 200 * 3 + 1
    start_silver(spark, config, CONTRACTS, available_now=True)[0].awaitTermination()
    landed = sum(lake.read_table(spark, config, "silver", c.silver_table).count()
                 for c in {c.silver_table: c for c in CONTRACTS.values()}.values())
    assert landed == 600
    [bad] = lake.read_table(spark, config, "silver", "quarantine").collect()
    assert (bad.reason, bad.kafka_topic, bad.kafka_offset) == (
        "envelope.payload is not a JSON object", "backfill:export.csv", 200)


def test_a_file_without_the_envelope_columns_is_refused(spark, state_dir, tmp_path):
    config = make_config("local", state_dir, PERFLAKE__LAKE__ROOT=(state_dir / "lakes" / "backfill-bad").as_uri())
    path = tmp_path / "wrong.csv"
    path.write_text("id,value\n1,2\n")
    expected = ("missing column(s): event_at, event_id, event_type, payload, schema_version, source "
                "(or source_service and source_host)")
    with pytest.raises(BackfillError, match=re.escape(expected)):
        load_file(spark, config, path, "csv")
    assert not lake.table_exists(spark, config, "bronze", "events")
