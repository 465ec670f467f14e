"""Silver validation on tiny literal messages: every input ends valid or quarantined with its reasons."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from perflake.contracts import load_contracts
from perflake.events import envelope
from perflake.pipeline import silver
from perflake.pipeline.streams import KAFKA_SOURCE_DDL, validated
from perflake.pipeline.bronze import bronze_rows

CONTRACTS = load_contracts()
LIMITS = silver.ValidationLimits(max_event_bytes=2000, max_future_s=300, late_after_s=600)
NOW = datetime.now(timezone.utc).replace(microsecond=0)
GOOD_METRIC = {"metric": "response_time_ms", "value": 12.5, "unit": "ms", "kind": "timer", "endpoint": "/orders",
               "status_code": 200}
GOOD_FILL = {
    "fill_id": "f1", "order_id": "o1", "account_id": "a1", "strategy": "put_selling", "symbol": "SPY",
    "side": "sell", "quantity": 2.0, "price": 1.5, "expected_price": 1.52, "slippage_bps": -131.6,
}


def event(event_type="metric", payload=None, **changes):
    body = envelope(event_type, payload or GOOD_METRIC, "ws4-market-integration", "app-1", NOW,
                    event_id=changes.pop("event_id", None))
    body.update(changes)
    return body


def bronze_of(spark, values: list[bytes]):
    messages = spark.createDataFrame(
        [(None, value, "perflake.metrics.v1", 0, offset, NOW, 0, []) for offset, value in enumerate(values)], KAFKA_SOURCE_DDL
    )
    return bronze_rows(messages)


def problems_of(spark, value: bytes, event_type="metric", version=1) -> list[str]:
    rows = validated(bronze_of(spark, [value]), CONTRACTS, LIMITS)
    problems = rows.first().problems
    if problems:
        return problems
    return silver.type_payloads(rows, CONTRACTS[(event_type, version)], LIMITS).first().problems


def encode(body) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.parametrize("contract", sorted(CONTRACTS), ids=lambda key: f"{key[0]}.v{key[1]}")
def test_every_contract_has_a_valid_sample(spark, contract):
    from perflake.events import sample_events

    sample = next(e for e in sample_events(400, NOW, seed=3) if (e["event_type"], e["schema_version"]) == contract)
    assert problems_of(spark, encode(sample), *contract) == []


BAD_INPUTS = [
    ("garbage bytes", b"\xff\xfe not json", ["not a JSON object"]),
    ("a batch of numbers", b"[1, 2]", ["not a JSON object"]),
    ("an empty batch", b"[]", ["an empty batch: a JSON array with no events"]),
    ("a truncated batch", b"[" + json.dumps(envelope("metric", GOOD_METRIC, "s", "h", NOW)).encode(), ["not a JSON object"]),
    ("missing event_id", encode({k: v for k, v in event().items() if k != "event_id"}), ["envelope.event_id is missing"]),
    ("missing source.host", encode(event() | {"source": {"service": "s"}}), ["envelope.source.host is missing"]),
    ("event_id not a UUID", encode(event(event_id="42")), ["envelope.event_id is not a UUID"]),
    ("schema_version not a number", encode(event(schema_version="one")), ["envelope.schema_version must be an integer"]),
    ("event_at not a time", encode(event(event_at="yesterday")), ["envelope.event_at is not an ISO-8601 time"]),
    (
        "event_at far in the future",
        encode(event(event_at=(NOW + timedelta(hours=2)).isoformat())),
        [f"envelope.event_at is more than 300s in the future: {(NOW + timedelta(hours=2)).isoformat()}"],
    ),
    ("payload not an object", encode(event(payload=None) | {"payload": [1]}), ["envelope.payload is not a JSON object"]),
    ("payload a string like an object", encode(event(payload=None) | {"payload": "{"}),
     ["envelope.payload is not a JSON object"]),
    ("unknown event type", encode(event(event_type="tweet")), ["unknown event type tweet version 1"]),
    ("unknown version", encode(event(schema_version=9)), ["unknown event type metric version 9"]),
    ("huge event", encode(event(tags={"blob": "x" * 3000})),
     [f"event is {len(encode(event(tags={'blob': 'x' * 3000})))} bytes; the limit is 2000"]),
    ("wrong type", encode(event(payload={**GOOD_METRIC, "value": "fast"})), ["payload.value must be number, got fast"]),
    ("missing field", encode(event(payload={k: v for k, v in GOOD_METRIC.items() if k != "unit"})), ["payload.unit is missing"]),
    ("outside the enum", encode(event(payload={**GOOD_METRIC, "unit": "furlongs"})),
     ["payload.unit is 'furlongs'; expected one of ms, s, bytes, percent, count, per_s, usd, bps, ratio"]),
    ("above the maximum", encode(event(payload={**GOOD_METRIC, "status_code": 700})),
     ["payload.status_code = 700 is above the maximum 599"]),
    ("bad metric name", encode(event(payload={**GOOD_METRIC, "metric": "Response Time"})),
     ["payload.metric does not match ^[a-z][a-z0-9_.]{0,127}$"]),
    (
        "two problems at once",
        encode(event("fill", {**GOOD_FILL, "quantity": 0, "side": "hold"})),
        ["payload.side is 'hold'; expected one of buy, sell", "payload.quantity = 0.0 is not above 0"],
    ),
]


@pytest.mark.parametrize("value, reasons", [(v, r) for _, v, r in BAD_INPUTS], ids=[name for name, _, _ in BAD_INPUTS])
def test_bad_input_gets_every_reason(spark, value, reasons):
    event_type = json.loads(value).get("event_type", "metric") if value.startswith(b"{") else "metric"
    assert problems_of(spark, value, event_type if (event_type, 1) in CONTRACTS else "metric") == reasons


def test_an_unknown_field_is_ignored_not_rejected(spark):
    """Compatibility: a producer ahead of this reader adds an optional field."""
    body = event(payload={**GOOD_METRIC, "new_optional_field": 3})
    body["new_envelope_field"] = "x"
    assert problems_of(spark, encode(body)) == []


def test_quarantine_rows_keep_reason_raw_bytes_and_coordinates(spark):
    rows = validated(bronze_of(spark, [encode(event()), b"\xff oops"]), CONTRACTS, LIMITS)
    [row] = silver.quarantine_rows(rows).collect()
    assert (row.reason, row.raw_value, row.kafka_topic, row.kafka_partition, row.kafka_offset) == (
        "not a JSON object", bytearray(b"\xff oops"), "perflake.metrics.v1", 0, 1,
    )
    assert row.raw_text.endswith(" oops")


def test_quarantine_keeps_the_event_type_and_version_as_written(spark):
    """The envelope is dropped after its checks; the quarantine still shows what the producer sent."""
    messages = [encode(event(schema_version="one")), encode(event(event_type="metrc"))]
    rows = validated(bronze_of(spark, messages), CONTRACTS, LIMITS)
    quarantined = sorted((row.event_type, row.schema_version) for row in silver.quarantine_rows(rows).collect())
    assert quarantined == [("metrc", "1"), ("metric", "one")]


def test_a_batch_message_is_split_into_its_events(spark):
    """Agents pack many events per message: each is validated alone and keeps its position."""
    good, bad, other = event(), event(payload={**GOOD_METRIC, "unit": "furlongs"}), event()
    batch = b"[" + b",".join(encode(e) for e in (good, bad, other)) + b"]"
    rows = validated(bronze_of(spark, [encode(event()), batch]), CONTRACTS, LIMITS)
    contract = CONTRACTS[("metric", 1)]
    typed = silver.type_payloads(rows, contract, LIMITS)
    out = silver.silver_rows(typed, contract).collect()
    assert sorted((r.event_id, r.kafka_offset, r.kafka_batch_index) for r in out if r.kafka_offset == 1) == sorted(
        [(good["event_id"], 1, 0), (other["event_id"], 1, 2)]
    )
    [quarantined] = silver.quarantine_rows(typed).collect()
    assert (quarantined.event_id, quarantined.kafka_offset, quarantined.kafka_batch_index) == (bad["event_id"], 1, 1)
    assert json.loads(quarantined.raw_value) == bad


def test_silver_keeps_the_first_copy_of_an_event(spark):
    first, other = event(), event()
    resent = dict(first, payload={**GOOD_METRIC, "value": 99.0})
    rows = validated(bronze_of(spark, [encode(first), encode(resent), encode(other)]), CONTRACTS, LIMITS)
    contract = CONTRACTS[("metric", 1)]
    out = silver.silver_rows(silver.type_payloads(rows, contract, LIMITS), contract).collect()
    kept = sorted((r.event_id, r.value, r.kafka_offset) for r in out)
    assert kept == sorted([(first["event_id"], 12.5, 0), (other["event_id"], 12.5, 2)])


def test_late_events_are_kept_and_flagged(spark):
    late = event(event_at=(NOW - timedelta(hours=2)).isoformat())
    rows = validated(bronze_of(spark, [encode(late), encode(event())]), CONTRACTS, LIMITS)
    contract = CONTRACTS[("metric", 1)]
    out = {r.event_id: r for r in silver.silver_rows(silver.type_payloads(rows, contract, LIMITS), contract).collect()}
    assert out[late["event_id"]].is_late is True and out[late["event_id"]].lateness_s > 7000
    assert sum(r.is_late for r in out.values()) == 1
