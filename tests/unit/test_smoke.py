import json
from datetime import datetime, timezone

from pyspark.sql import Row

from perflake.schemas import load_table_schema
from perflake.smoke import parse_smoke_messages, smoke_events

START = datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc)


def test_smoke_events_are_reproducible_and_unique():
    events = smoke_events("run1", 50, START, seed=7)
    assert events == smoke_events("run1", 50, START, seed=7)
    assert len({event["event_id"] for event in events}) == 50
    assert [event["seq"] for event in events] == list(range(50))
    assert events[1]["event_at"] == "2026-11-24T09:30:01+00:00"


def test_kafka_messages_become_smoke_rows_with_their_coordinates(spark):
    event = smoke_events("run1", 1, START)[0]
    kafka_at = datetime(2026, 11, 24, 9, 30, 5)
    messages = spark.createDataFrame(
        [Row(key=b"k", value=json.dumps(event).encode(), topic="t", partition=2, offset=41, timestamp=kafka_at)]
    )
    rows = parse_smoke_messages(messages,
                                load_table_schema("bronze", "smoke_events")["payload_ddl"]).drop("ingested_at").collect()
    assert [row.asDict() for row in rows] == [
        {
            **{key: value for key, value in event.items() if key != "event_at"},
            "event_at": datetime(2026, 11, 24, 9, 30),
            "kafka_topic": "t",
            "kafka_partition": 2,
            "kafka_offset": 41,
            "kafka_at": kafka_at,
        }
    ]


def test_a_message_that_is_not_json_keeps_its_coordinates(spark):
    messages = spark.createDataFrame(
        [(None, b"\xff garbage", "t", 0, 7, START)],
        "key BINARY, value BINARY, topic STRING, partition INT, offset LONG, timestamp TIMESTAMP"
    )
    row = parse_smoke_messages(messages, load_table_schema("bronze", "smoke_events")["payload_ddl"]).first()
    assert row.event_id is None and row.kafka_offset == 7
