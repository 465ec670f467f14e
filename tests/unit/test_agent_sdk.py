"""The agent SDK without a broker: with Kafka unreachable everything it records lands in its
spool, which is then exactly what it would have sent."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone

import jsonschema
import pytest

from perflake.agent import Agent, AgentUsageError
from perflake.agent.core import at_share
from perflake.agent.encoding import EnvelopeEncoder, Source, pack
from perflake.agent.spool import Spool
from perflake.contracts import load_contracts, load_envelope
from perflake.events import sample_events
from perflake.pipeline import silver
from perflake.pipeline.streams import validated
from tests.support import make_config
from tests.unit.test_silver import LIMITS, bronze_of

FILL = {
    "fill_id": "f1", "order_id": "o1", "account_id": "acct-001", "strategy": "put_selling", "symbol": "SPY",
    "side": "sell", "quantity": 2.0, "price": 1.5, "expected_price": 1.52, "slippage_bps": -131.6,
}


def offline(state_dir, **overrides):
    """Kafka unreachable (nothing listens on port 9), so every message goes to the spool."""
    settings = {
        "PERFLAKE__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "PERFLAKE__AGENT__ACK_TIMEOUT_S": "0.2",
        "PERFLAKE__AGENT__REPORT_INTERVAL_S": "3600",
        "PERFLAKE__AGENT__SHUTDOWN_TIMEOUT_S": "1",
    }
    return make_config("local", state_dir, **(settings | overrides))


@pytest.fixture
def offline_config(tmp_path):
    return offline(tmp_path)


def spooled_events(config, service: str) -> list[dict]:
    spool = Spool(config.agent.spool.dir / service / "0", 1 << 30, 1 << 24, "drop_oldest", 0)
    return [event for message in spool.read(100_000) for event in json.loads(message.value)]


def test_what_the_agent_writes_passes_silver_as_is(spark, offline_config):
    with Agent("ws4-market-integration", offline_config, host="app-1") as agent:
        agent.timer("response_time_ms", endpoint="/orders").observe(12.5, status_code=200, is_error=False)
        agent.histogram("slippage_bps", unit="bps", tags={"symbol": "SPY"}).observe(-3)
        agent.counter("orders_submitted").inc(3)
        agent.gauge("open_positions", unit="count").set(7)
        agent.fill(**FILL)
        agent.fork("acct-001", "acct-002", 25_000.0)
        agent.protocol_decision(
            decision_id="d1", account_id="acct-001", decision="sell_put", outcome="pending", is_compliant=True,
            is_human_override=True, override_reason="manual risk reduction", approval_latency_ms=42_000.0,
            decision_latency_ms=35.0,
        )
    events = spooled_events(offline_config, "ws4-market-integration")
    batch = json.dumps(events).encode()
    rows = validated(bronze_of(spark, [batch]), load_contracts(), LIMITS)
    contracts = load_contracts()
    typed = [silver.type_payloads(rows, contract, LIMITS) for contract in contracts.values()]
    problems = [row.reason for frame in typed for row in silver.quarantine_rows(frame).collect()]
    problems += [row.reason for row in silver.quarantine_rows(rows).collect()]
    assert problems == []
    kinds = {(e["event_type"], e["payload"].get("metric"), e["payload"].get("kind")) for e in events}
    assert {("metric", "response_time_ms", "timer"), ("metric", "slippage_bps", "histogram"),
            ("metric", "orders_submitted", "counter"), ("metric", "open_positions", "gauge"), ("fill", None, None),
            ("account_operation", None, None), ("protocol_decision", None, None)} <= kinds
    counted = next(e for e in events if e["payload"].get("metric") == "orders_submitted")
    assert counted["payload"]["value"] == 3.0


def test_every_event_the_agent_and_the_sample_traffic_write_is_an_envelope_as_its_json_schema_says(offline_config):
    with Agent("ws3-account-management", offline_config, host="app-2", tags={"region": "us-east"}) as agent:
        agent.timer("response_time_ms", endpoint="/accounts").observe(8.0, status_code=500, is_error=True)
        agent.counter("accounts_opened").inc()
        agent.fork("acct-001", "acct-002", 25_000.0)
    events = spooled_events(offline_config, "ws3-account-management")
    samples = sample_events(200, datetime.now(timezone.utc))
    checker = jsonschema.Draft202012Validator(load_envelope(), format_checker=jsonschema.FormatChecker())
    problems = [f"{event['event_type']}: {error.message}" for event in events + samples for error in checker.iter_errors(event)]
    assert problems == [] and len(events) >= 3


def test_events_are_numbered_per_source_with_unique_uuid_ids(offline_config):
    with Agent("ws2-protocol-engine", offline_config) as agent:
        timer = agent.timer("decision_ms")
        for value in range(50):
            timer.observe(value)
    events = spooled_events(offline_config, "ws2-protocol-engine")
    sequences = [e["source"]["sequence"] for e in events]
    assert sequences == list(range(len(events))) and len(events) >= 50
    assert len({e["event_id"] for e in events}) == len(events)
    assert all(silver_uuid(e["event_id"]) for e in events)
    assert [e["payload"]["value"] for e in events if e["payload"]["metric"] == "decision_ms"] == [float(v) for v in range(50)]


def silver_uuid(text: str) -> bool:
    return re.fullmatch(silver.UUID_PATTERN, text) is not None


def test_a_timed_block_that_raises_is_an_error_sample(offline_config):
    with Agent("ws3-account-management", offline_config) as agent:
        timer = agent.timer("response_time_ms", endpoint="/accounts/fork")
        with pytest.raises(KeyError), timer.time():
            raise KeyError("no such account")

        @timer
        def fine():
            return "done"

        assert fine() == "done"
    samples = [e["payload"] for e in spooled_events(offline_config, "ws3-account-management") if e["payload"].get("endpoint")]
    assert [s["is_error"] for s in samples] == [True, False]
    assert all(s["value"] >= 0 for s in samples)


@pytest.mark.parametrize(
    "record, message",
    [
        (lambda a: a.timer("Response Time"), r"metric 'Response Time': payload.metric does not match"),
        (lambda a: a.histogram("slippage", unit="furlongs"), r"payload.unit is 'furlongs'; expected one of ms, s, bytes"),
        (lambda a: a.timer("latency_ms").observe("fast"), r"metric latency_ms: value 'fast' is not a finite number"),
        (lambda a: a.timer("latency_ms").observe(float("nan")), r"value nan is not a finite number"),
        (lambda a: a.counter("orders").inc(-1), r"counter orders: increment -1 must be a finite number >= 0"),
        (lambda a: a.fill(**{**FILL, "side": "hold"}), r"fill: payload.side is 'hold'; expected one of buy, sell"),
        (lambda a: a.fill(**{k: v for k, v in FILL.items() if k != "price"}), r"fill: payload.price is missing"),
        (lambda a: a.event("tweet", {}), r"unknown event type 'tweet'"),
    ],
)
def test_strict_mode_raises_at_the_call_site(offline_config, record, message):
    with Agent("ws4-market-integration", offline_config) as agent:
        with pytest.raises(AgentUsageError, match=message):
            record(agent)


def test_production_mode_counts_bad_records_instead_of_raising(tmp_path):
    config = offline(tmp_path, PERFLAKE__AGENT__STRICT="false")
    with Agent("ws4-market-integration", config) as agent:
        bad = agent.timer("Bad Name")
        bad.observe(1.0)
        with bad.time():
            pass
        agent.timer("latency_ms").observe(float("inf"))
        agent.fill(**{**FILL, "quantity": "two"})
        assert agent.stats()["invalid"] == 5  # the definition, two uses, the value, the fill


def test_a_full_queue_drops_new_events_and_counts_them(tmp_path):
    config = offline(tmp_path, PERFLAKE__AGENT__QUEUE_CAPACITY="10", PERFLAKE__AGENT__LINGER_MS="60000")
    agent = Agent("ws4-market-integration", config)
    timer = agent.timer("latency_ms")
    for value in range(25):
        timer.observe(value)
    assert (agent.stats()["queued"], agent.stats()["dropped"]) == (10, 15)
    agent.close()
    kept = [e["payload"]["value"] for e in spooled_events(config, "ws4-market-integration")
            if e["payload"]["metric"] == "latency_ms"]
    assert kept == [float(v) for v in range(10)]  # what was accepted is kept, in order


def test_sampling_keeps_about_the_configured_share_and_says_so(tmp_path):
    config = offline(tmp_path, PERFLAKE__AGENT__SAMPLING='{"response_time_ms": "0.25"}')
    with Agent("ws4-market-integration", config) as agent:
        timer = agent.timer("response_time_ms")
        for _ in range(4000):
            timer.observe(5.0)
    kept = [e for e in spooled_events(config, "ws4-market-integration") if e["payload"]["metric"] == "response_time_ms"]
    assert 800 < len(kept) < 1200
    assert {e["tags"]["sample_rate"] for e in kept} == {"0.25"}


def test_the_agent_reports_its_own_health_through_itself(tmp_path):
    config = offline(tmp_path, PERFLAKE__AGENT__REPORT_INTERVAL_S="0.2")
    with Agent("ws4-market-integration", config) as agent:
        timer = agent.timer("latency_ms")
        for value in range(30):
            timer.observe(value)
        time.sleep(1.0)  # a few reports after the samples were spooled
    health: dict[str, list[float]] = {}
    for event in spooled_events(config, "ws4-market-integration"):
        if event["payload"]["metric"].startswith("agent."):
            health.setdefault(event["payload"]["metric"], []).append(event["payload"]["value"])
    assert sum(health["agent.events_spooled"]) >= 30  # counters report increases per interval
    assert sum(health["agent.events_dropped"]) == 0
    assert max(health["agent.spool_bytes"]) > 0
    assert {"agent.queue_depth", "agent.events_sent", "agent.events_invalid"} <= set(health)


def test_pack_fills_messages_up_to_the_limit_and_keeps_order():
    events = [json.dumps({"n": n}).encode() for n in range(100)]
    messages = pack(events, max_bytes=100)
    assert all(len(value) <= 100 for value, _ in messages)
    assert [item for value, _ in messages for item in json.loads(value)] == [{"n": n} for n in range(100)]
    assert sum(count for _, count in messages) == 100
    [(alone, count)] = pack([b'"' + b"x" * 500 + b'"'], max_bytes=100)  # an oversized event goes alone
    assert count == 1 and len(json.loads(alone)) == 1


def test_timestamps_are_iso_utc_with_microseconds():
    encoder = EnvelopeEncoder(Source("s", "h", "i"), {})
    assert encoder.timestamp(1_764_000_000.123456) == "2025-11-24T16:00:00.123456+00:00"


def test_a_share_of_the_way_up_a_sorted_list_is_one_of_its_values_and_never_past_the_end():
    latencies = [float(ms) for ms in range(1, 101)]
    assert (at_share(latencies, 0.5), at_share(latencies, 0.99), at_share(latencies, 1.0)) == (51.0, 100.0, 100.0)
    assert at_share([7.0], 0.99) == 7.0
