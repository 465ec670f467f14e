"""The simulator through real agents and the real broker: its labels describe what it emitted,
and its traffic (batched, lz4-compressed messages) lands in silver event for event."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime, timezone

import pytest

from perflake import lake
from perflake.contracts import load_contracts
from perflake.kafka import consume_events, ensure_topics
from perflake.simulator import read_labels, simulate
from perflake.simulator.workload import ANOMALY_KINDS, Workload
from tests.support import pipeline_config, run_once

pytestmark = pytest.mark.integration
# Monday 2026-11-23 from 09:30 New York time: the open, the session, the midday lull
START = datetime(2026, 11, 23, 14, 30, tzinfo=timezone.utc).timestamp()
HOURS = 4


@pytest.fixture(scope="module")
def simulated(running_services, state_dir):
    config = pipeline_config(state_dir, "simulator")
    ensure_topics(config, config.kafka.topics.values())
    workload = Workload(START, HOURS * 3600, rate=12, seed=7, anomalies=len(ANOMALY_KINDS),
                        timezone_name=config.pipeline.trading_timezone)
    summary = simulate(config, workload, state_dir / "labels.csv", speed=0)
    instances = set(summary.instances.values())
    events = consume_events(config, lambda event: event["source"]["instance"] in instances, expected=summary.total, timeout_s=120)
    return {"config": config, "summary": summary, "events": events, "labels": read_labels(state_dir / "labels.csv")}


def test_every_emitted_event_reached_kafka_once(simulated):
    events = simulated["events"]
    assert len(events) == len({e["event_id"] for e in events}) >= simulated["summary"].total
    by_type = Counter(e["event_type"] if e["event_type"] != "metric" else "metric"
                      for e in events if not e["payload"].get("metric", "").startswith("agent."))
    assert by_type == simulated["summary"].events


def test_one_labelled_anomaly_of_each_kind(simulated):
    assert sorted(anomaly.kind for anomaly in simulated["labels"]) == sorted(ANOMALY_KINDS)


def requests_of(events, service, endpoint=None, host=None):
    return [
        e for e in events
        if e["event_type"] == "metric" and e["payload"]["metric"] == "response_time_ms" and e["source"]["service"] == service
        and (endpoint is None or e["payload"]["endpoint"] == endpoint) and (host is None or e["source"]["host"] == host)
    ]


def split(events, anomaly):
    """(inside the window, outside every window of the same entity)."""
    at = lambda e: datetime.fromisoformat(e["event_at"]).timestamp()  # noqa: E731
    inside = [e for e in events if anomaly.start <= at(e) < anomaly.end]
    outside = [e for e in events if not (anomaly.start - 300 <= at(e) < anomaly.end + 300)]
    return inside, outside


def endpoint_of(anomaly):
    service, _, rest = anomaly.entity.partition("/")
    return "/" + rest.rpartition("@")[0]


def check(anomaly, events) -> None:
    kind = anomaly.kind
    if kind in ("latency_spike", "slow_drift", "error_burst"):
        inside, outside = split(requests_of(events, anomaly.service, endpoint_of(anomaly), anomaly.host), anomaly)
        if kind == "slow_drift":
            inside = inside[len(inside) * 2 // 3 :]  # the drift has built up by the last third
        if kind == "error_burst":
            share = lambda rows: sum(e["payload"]["is_error"] for e in rows) / len(rows)  # noqa: E731
            assert share(inside) > 0.2 and share(outside) < 0.05
        else:
            median = lambda rows: statistics.median(e["payload"]["value"] for e in rows)  # noqa: E731
            assert median(inside) > (2.5 if kind == "latency_spike" else 1.3) * median(outside)
    elif kind == "throughput_drop":
        other_service = "ws4-market-integration" if anomaly.service != "ws4-market-integration" else "ws2-protocol-engine"
        mine, others = (split(requests_of(events, s), anomaly) for s in (anomaly.service, other_service))
        assert len(mine[0]) / len(others[0]) < 0.5 * len(mine[1]) / len(others[1])
    elif kind == "memory_leak":
        samples = [e for e in events if e["source"]["service"] == "host" and e["source"]["host"] == anomaly.entity
                   and e["payload"]["metric"] == "memory_used_bytes"]
        inside, outside = split(samples, anomaly)
        peak_before = max(e["payload"]["value"] for e in outside)
        assert max(e["payload"]["value"] for e in inside) > peak_before + 0.5 * anomaly.magnitude * 1e9
    elif kind == "market_data_stall":
        feed = [e for e in events if e["event_type"] == "market_data" and e["payload"]["feed"] == anomaly.entity]
        inside, outside = split(feed, anomaly)
        assert inside and all(e["payload"]["message_count"] == 0 and e["payload"]["is_stale"] for e in inside)
        assert not any(e["payload"]["message_count"] == 0 for e in outside)
    elif kind == "account_drawdown":
        snapshots = [e for e in events if e["event_type"] == "account_snapshot" and e["payload"]["account_id"] == anomaly.entity]
        inside, outside = split(snapshots, anomaly)
        mean = lambda rows: statistics.mean(e["payload"]["drawdown_pct"] for e in rows)  # noqa: E731
        assert mean(inside) > mean(outside) + 0.25 * anomaly.magnitude
    else:
        inside, outside = split([e for e in events if e["event_type"] == "protocol_decision"], anomaly)
        share = lambda rows: sum(e["payload"]["is_human_override"] for e in rows) / len(rows)  # noqa: E731
        assert share(inside) > 0.3 and share(outside) < 0.2


@pytest.mark.parametrize("kind", sorted(ANOMALY_KINDS))
def test_each_label_describes_what_was_emitted(simulated, kind):
    [anomaly] = [a for a in simulated["labels"] if a.kind == kind]
    check(anomaly, simulated["events"])


def test_simulated_traffic_lands_in_silver_event_for_event(spark, simulated):
    config = simulated["config"]
    run_once(spark, config)
    contracts = load_contracts()
    assert lake.read_table(spark, config, "silver", "quarantine").count() == 0
    expected = Counter(contracts[(e["event_type"], 1)].silver_table for e in simulated["events"])
    for table, count in expected.items():
        assert lake.read_table(spark, config, "silver", table).count() == count, table
