"""Benchmarks of the collection agent on this machine (docs/benchmarks.md has the figures).

    .venv/bin/pip install -e '.[bench]'      # prometheus-client, opentelemetry-sdk, confluent-kafka
    .venv/bin/python benchmarks/agent.py [--seconds 10] [--skip-outage]

Uses the local profile's broker (started if needed) and topics of its own.
1. cost per recorded metric (ns/op), in the same run: perflake, prometheus_client, OpenTelemetry
2. CPU overhead of the agent on a simulated service doing 10,000 requests/s
3. agent-to-Kafka acknowledgement latency, p50/p99, at that load
4. producer throughput per process: raw ~70-byte messages (kafka-python, confluent-kafka)
   and agent events (packed, both transports)
5. capture while the broker is stopped and restarted under load
"""

from __future__ import annotations

import argparse
import json
import os
import dataclasses
import resource
import time
import uuid

from perflake import services
from perflake.agent import Agent
from perflake.agent.core import at_share
from perflake.config import load_config
from perflake.kafka import client_settings, consume_events, ensure_topics

REQUEST_RATE = 10_000
WORK_US = 50  # CPU per simulated request: the service alone keeps half a core busy at 10,000/s
TOPIC_NAMES = ("metrics", "trading", "accounts", "protocol", "smoke")


def bench_config(name: str, **overrides: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERFLAKE__")}
    env["PERFLAKE__KAFKA__TOPICS"] = json.dumps({topic: f"perflake.bench.{name}.{topic}" for topic in TOPIC_NAMES})
    env["PERFLAKE__AGENT__SPOOL__DIR"] = f"bench-spool/{name}"
    env["PERFLAKE__AGENT__REPORT_INTERVAL_S"] = "3600"  # the health report would drain the latency samples
    env.update(overrides)
    config = load_config("local", env)
    ensure_topics(config, config.kafka.topics.values())
    return config


def with_transport(config, transport: str):
    return dataclasses.replace(config, agent=dataclasses.replace(config.agent, transport=transport))


def ns_per_op(call, count: int = 300_000) -> float:
    started = time.perf_counter_ns()
    for _ in range(count):
        call()
    return (time.perf_counter_ns() - started) / count


def cost_per_metric(config) -> dict[str, float]:
    import prometheus_client
    from opentelemetry.sdk.metrics import MeterProvider

    registry = prometheus_client.CollectorRegistry()
    prom_histogram = prometheus_client.Histogram("response_time_ms", "help", ["endpoint"], registry=registry).labels("/orders")
    prom_counter = prometheus_client.Counter("orders", "help", registry=registry)
    meter = MeterProvider().get_meter("bench")
    otel_histogram, otel_counter = meter.create_histogram("response_time_ms"), meter.create_counter("orders")
    attributes = {"endpoint": "/orders"}
    with Agent("ws4-market-integration", config) as agent:
        timer, counter = agent.timer("response_time_ms", endpoint="/orders"), agent.counter("orders")
        figures = {
            "perflake timer.observe (each sample an event, sent to Kafka)": ns_per_op(lambda: timer.observe(12.5)),
            "perflake counter.inc": ns_per_op(counter.inc),
            "prometheus_client Histogram.observe": ns_per_op(lambda: prom_histogram.observe(12.5)),
            "prometheus_client Counter.inc": ns_per_op(prom_counter.inc),
            "OpenTelemetry SDK histogram.record": ns_per_op(lambda: otel_histogram.record(12.5, attributes)),
            "OpenTelemetry SDK counter.add": ns_per_op(lambda: otel_counter.add(1)),
        }
        agent.flush(60)
    return figures


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def calibrate_work(target_us: float = WORK_US) -> int:
    """Loop iterations that take ``target_us`` of CPU here: a fixed amount of work per request,
    so that CPU the agent takes shows as extra CPU, not as less work done."""
    iterations = 1000
    while True:
        started = time.process_time()
        for _ in range(200):
            sum(range(iterations))
        took_us = (time.process_time() - started) / 200 * 1e6
        if took_us > 5:
            return max(1, round(iterations * target_us / took_us))
        iterations *= 4


def simulated_service(seconds: float, record, iterations: int) -> tuple[float, int]:
    """10,000 requests/s, each a fixed computation then ``record(ms)``; returns (CPU seconds, requests)."""
    per_tick = REQUEST_RATE // 100
    started, cpu_before, done = time.monotonic(), cpu_seconds(), 0
    while time.monotonic() - started < seconds:
        for _ in range(per_tick):
            begin = time.perf_counter()
            sum(range(iterations))
            record((time.perf_counter() - begin) * 1000)
        done += per_tick
        time.sleep(max(0.0, started + done / REQUEST_RATE - time.monotonic()))
        if done % (REQUEST_RATE * 5) == 0:
            print(f"    {done} requests", flush=True)
    return cpu_seconds() - cpu_before, done


def overhead_and_latency(config, seconds: float) -> dict:
    iterations = calibrate_work()
    baseline_cpu, requests = simulated_service(seconds, lambda ms: None, iterations)
    figures = {"requests per run": requests, "service CPU s without the agent": round(baseline_cpu, 3)}
    for transport in ("kafka-python", "confluent-kafka"):
        agent = Agent("ws4-market-integration", with_transport(config, transport))
        timer = agent.timer("response_time_ms", endpoint="/orders")
        with_cpu, _ = simulated_service(seconds, timer.observe, iterations)
        latencies = sorted(agent._sender.stats.ack_latencies_ms)
        agent.flush(60)
        agent.close()
        extra = with_cpu - baseline_cpu
        figures[transport] = {
            "service CPU s with the agent": round(with_cpu, 3),
            "overhead %": round(100 * extra / baseline_cpu, 2),
            "agent CPU per event (us)": round(extra / requests * 1e6, 2),
            "ack latency p50 ms": round(at_share(latencies, 0.5), 1),
            "ack latency p99 ms": round(at_share(latencies, 0.99), 1),
            "acknowledged messages": len(latencies),
        }
    return figures


def raw_producer_throughput(config, count: int = 200_000) -> dict[str, float]:
    from confluent_kafka import Producer
    from kafka import KafkaProducer

    value = b'{"metric":"response_time_ms","value":12.5,"unit":"ms","kind":"timer"}'  # 70 bytes
    topic = f"perflake.bench.raw.{uuid.uuid4().hex[:8]}"
    ensure_topics(config, [topic])
    figures = {}
    producer = KafkaProducer(**client_settings(config), acks="all", linger_ms=5, batch_size=262144)
    started = time.perf_counter()
    for _ in range(count):
        producer.send(topic, value)
    producer.flush()
    figures["kafka-python, one 70-byte message each"] = count / (time.perf_counter() - started)
    producer.close()
    confluent = Producer({"bootstrap.servers": config.kafka.bootstrap_servers, "acks": "all", "linger.ms": 5,
                          "enable.idempotence": True})
    started = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                confluent.produce(topic, value)
                break
            except BufferError:
                confluent.poll(0.01)
        confluent.poll(0)
    confluent.flush()
    figures["confluent-kafka, one 70-byte message each"] = count / (time.perf_counter() - started)
    return figures


def agent_throughput(config, transport: str, count: int = 1_000_000) -> float:
    """Events/s one process records and has acknowledged by Kafka, as fast as it can."""
    agent = Agent("ws4-market-integration", with_transport(config, transport))
    timer = agent.timer("response_time_ms", endpoint="/orders")
    started = time.perf_counter()
    for index in range(count):
        timer.observe(12.5)
        if index % 50_000 == 0:
            while agent.stats()["queued"] > 100_000:  # do not outrun the queue: this measures sending
                time.sleep(0.001)
    assert agent.flush(120), agent.stats()
    elapsed = time.perf_counter() - started
    agent.close()
    return count / elapsed


def capture_through_outage(config, local, seconds: float = 40, rate: int = 5000) -> dict:
    agent = Agent("ws4-market-integration", config)
    timer = agent.timer("outage_test")
    started, sent = time.monotonic(), 0
    stopped_at, restarted_at = seconds * 0.25, seconds * 0.5
    phase = "up"
    while time.monotonic() - started < seconds:
        elapsed = time.monotonic() - started
        if phase == "up" and elapsed >= stopped_at:
            print("    stopping the broker", flush=True)
            services.down(local, say=lambda _: None, only=["kafka"])
            phase = "down"
        elif phase == "down" and elapsed >= restarted_at:
            print("    starting the broker", flush=True)
            services.up(local, say=lambda _: None)
            phase = "back"
        for _ in range(rate // 100):
            timer.observe(float(sent))
            sent += 1
        time.sleep(max(0.0, started + sent / rate - time.monotonic()))
    delivered = agent.flush(120)
    agent.close()
    instance = agent.source.instance
    events = consume_events(config, lambda event: event["source"]["instance"] == instance, agent.stats()["sequence"],
                            timeout_s=120)
    values = {e["payload"]["value"] for e in events if e["payload"].get("metric") == "outage_test"}
    return {
        "recorded": sent,
        "arrived (distinct)": len(values),
        "capture %": round(100 * len(values) / sent, 3),
        "copies on Kafka beyond the first (silver keeps one)": len(events) - len({e["event_id"] for e in events}),
        "spooled during the outage": agent.stats()["spooled"],
        "flushed in time": delivered,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10, help="length of each simulated-service run")
    parser.add_argument("--skip-outage", action="store_true")
    args = parser.parse_args()
    local = load_config("local", {k: v for k, v in os.environ.items() if not k.startswith("PERFLAKE__")})
    services.up(local, say=print)
    config = bench_config(uuid.uuid4().hex[:8])
    print("1. cost per recorded metric ...", flush=True)
    show({name: round(value) for name, value in cost_per_metric(config).items()})
    print(f"2-3. simulated service at {REQUEST_RATE}/s, {WORK_US} us of CPU each, "
          f"{args.seconds:.0f}s without and with the agent ...", flush=True)
    show(overhead_and_latency(config, args.seconds))
    print("4. producer throughput, messages or events per second ...", flush=True)
    throughput = raw_producer_throughput(config)
    for transport in ("kafka-python", "confluent-kafka"):
        throughput[f"agent events, {transport} transport (packed)"] = agent_throughput(config, transport)
    show({name: round(value) for name, value in throughput.items()})
    if not args.skip_outage:
        print("5. broker stopped and restarted under load ...", flush=True)
        show(capture_through_outage(config, local))


def show(figures: dict) -> None:
    print(json.dumps(figures, indent=2), flush=True)


if __name__ == "__main__":
    main()
