"""Benchmarks of the medallion pipeline on this machine (docs/benchmarks.md has the figures).

    .venv/bin/python benchmarks/pipeline.py [--events 300000] [--throughput-warmup-events 100000]
        [--events-per-message 1] [--latency-seconds 60] [--rate 500] [--warmup-seconds 20]
        [--history-events 200000] [--parts throughput,floor,query,latency] [--drivers one|per_layer]

Uses its own topics, lake and run state under state/bench (services must be up: `perflake services up`).
1. throughput: N events in Kafka -> bronze -> silver -> gold, each layer's stream in turn, in one
   session that first took --throughput-warmup-events (sustained, not a cold JVM's first batch)
2. storage: bytes of raw JSON vs silver and gold on disk (with 1.)
3. floor: Spark alone on the same machine, Kafka -> Delta copying or parsing each message once,
   and the fixed cost of one Delta commit (plain append, append with a transaction id, MERGE)
4. query: gold query latency, one service, one metric, last 24 h at 1-minute grain, warm session
5. latency: the three streams as background jobs over a lake that already holds a day of events
   (--history-events), warmed up, then events produced at a steady rate; the time from an
   event's creation until gold counts it (p50/p95 over one-second cohorts)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pyspark.sql import functions as F

from perflake import lake
from perflake.agent.core import at_share
from perflake.config import load_config
from perflake.contracts import load_contracts
from perflake.events import sample_events
from perflake.kafka import encode_json, ensure_topics, events_by_topic, produce
from perflake.pipeline import runner
from perflake.pipeline.silver import ENVELOPE_TEXT_DDL
from perflake.pipeline.streams import STARTERS, family_topics
from perflake.spark import get_spark
from support import bench_environ

CONTRACTS = load_contracts()
PARTS = ("throughput", "floor", "query", "latency")


def pipeline_environ(name: str, drivers: str | None = None) -> dict[str, str]:
    """``bench_environ`` with the benchmark's own topics, and its drivers' layout if given."""
    env = bench_environ(name)
    if drivers:
        env["PERFLAKE__PIPELINE__DRIVERS"] = drivers
    for family in sorted({c.family for c in CONTRACTS.values()}):
        env[f"PERFLAKE__KAFKA__TOPICS__{family.upper()}"] = f"perflake.bench.{name}.{family}"
    return env


def produce_all(config, events: list[dict], events_per_message: int = 1) -> int:
    """Send events to their family topics, ``events_per_message`` to a message (a JSON array, as
    the agents pack them; one bare envelope per message for 1); returns the JSON bytes sent."""
    sent = 0
    for topic, topic_events in events_by_topic(config, CONTRACTS, events).items():
        if events_per_message == 1:
            messages = [(event["event_id"].encode(), encode_json(event)) for event in topic_events]
        else:
            chunks = [topic_events[i:i + events_per_message] for i in range(0, len(topic_events), events_per_message)]
            messages = [(f"bench-agent-{n % 8}".encode(), encode_json(chunk)) for n, chunk in enumerate(chunks)]
        sent += sum(len(value) for _, value in messages)
        produce(config, topic, messages)
    return sent


def directory_bytes(uri: str) -> int:
    root = Path(uri.removeprefix("file://"))
    return sum(path.stat().st_size for path in root.rglob("*.parquet"))


def remove_lake(config) -> None:
    """Delete a benchmark's own lake (under state/bench) once it is measured."""
    shutil.rmtree(Path(config.lake.root.removeprefix("file://")), ignore_errors=True)


def run_layers(spark, config, count: int, label: str) -> dict[str, float]:
    """Each layer's stream over what Kafka holds (available-now), one after the other; seconds per layer."""
    timings = {}
    for layer in runner.LAYERS:
        started = time.monotonic()
        for query in STARTERS[layer](spark, config, CONTRACTS, available_now=True):
            query.awaitTermination()
        timings[layer] = time.monotonic() - started
        print(f"{label} {layer}: {timings[layer]:.1f}s ({count / timings[layer]:,.0f} events/s)", flush=True)
    return timings


def throughput_and_storage(count: int, warmup_count: int, events_per_message: int) -> dict:
    """Sustained throughput: the streams first take ``warmup_count`` events in the same session
    (a fresh session's first batch is mostly the JVM compiling Spark's hot paths: bronze took
    29.7 s for 300,000 events cold, 7.0 s warm, on 2026-12-03), then ``count`` events are timed."""
    name = f"throughput-{int(time.time())}"
    env = pipeline_environ(name)
    config = load_config(environ=env)
    ensure_topics(config, family_topics(config, CONTRACTS))
    spark = get_spark(config, app_name="perflake-bench")
    now = datetime.now(timezone.utc)
    raw_bytes = 0
    for label, events_count, seed in (("warm-up", warmup_count, 60), ("measured", count, 61)):
        if not events_count:
            continue
        events = sample_events(events_count, now, seed=seed, span=timedelta(hours=1))
        started = time.monotonic()
        raw_bytes += produce_all(config, events, events_per_message)
        took = time.monotonic() - started
        print(f"{label}: produced {events_count} events, {events_per_message} per message, in {took:.1f}s", flush=True)
        timings = run_layers(spark, config, events_count, label)
    silver_bytes = sum(directory_bytes(lake.table_path(config, "silver", t))
                       for t in {c.silver_table for c in CONTRACTS.values()})
    gold_bytes = directory_bytes(f"{config.lake.root}/gold")
    result = {
        "events": count,
        "warmup_events": warmup_count,
        "events_per_message": events_per_message,
        "raw_json_bytes": raw_bytes,  # of the warm-up and the measured events: the lake holds both
        "bronze_s": round(timings["bronze"], 1),
        "silver_s": round(timings["silver"], 1),
        "gold_s": round(timings["gold"], 1),
        "kafka_to_silver_events_per_s": round(count / (timings["bronze"] + timings["silver"])),
        "silver_bytes": silver_bytes,
        "gold_bytes": gold_bytes,
        "silver_saving_pct": round(100 * (1 - silver_bytes / raw_bytes), 1),
        "gold_saving_pct": round(100 * (1 - gold_bytes / raw_bytes), 1),
    }
    spark.stop()
    remove_lake(config)
    return result


def spark_floor(count: int, repeats: int = 3) -> dict:
    """What Spark alone does with the same events on this machine: Spark's Kafka source into a
    Delta table (1) copying each message, (2) parsing each message's envelope once with one
    from_json: one event per message, no validation, no dedupe, one table. The first of each
    ``repeats`` is cold; the figures kept are the warm ones (the others)."""
    name = f"floor-{int(time.time())}"
    config = load_config(environ=pipeline_environ(name))
    topics = family_topics(config, CONTRACTS)
    ensure_topics(config, topics)
    produce_all(config, sample_events(count, datetime.now(timezone.utc), seed=62, span=timedelta(hours=1)))
    spark = get_spark(config, app_name="perflake-bench-floor")
    shapes = {
        "copy": lambda messages: messages.select("value", "topic", "partition", "offset", "timestamp"),
        "parse": lambda messages: messages.select(
            F.from_json(F.col("value").cast("string"), ENVELOPE_TEXT_DDL).alias("envelope"), "offset"
        ).select("envelope.*", "offset"),
    }
    result = {}
    try:
        for shape, transform in shapes.items():
            rates = []
            for repeat in range(repeats):
                table = f"floor_{shape}_{repeat}"
                started = time.monotonic()
                rows = transform(lake.read_kafka_stream(spark, config, topics))
                lake.append_stream(rows, config, "bronze", table, table, available_now=True).awaitTermination()
                rates.append(count / (time.monotonic() - started))
                print(f"floor {shape} {repeat + 1}/{repeats}: {rates[-1]:,.0f} events/s", flush=True)
            result[f"floor_{shape}_events_per_s"] = [round(rate) for rate in rates[1:]]
        result.update(commit_seconds(spark, config))
    finally:
        spark.stop()
        remove_lake(config)
    return result


def commit_seconds(spark, config, warmup: int = 3, repeats: int = 12) -> dict:
    """The fixed cost of one Delta commit of 100 rows to a table of 100,000 on a warm session, the
    three ways the pipeline's batches write (median of ``repeats``, after ``warmup``): a plain append;
    an append with a transaction id (the bronze stream's Delta sink and silver's quarantine do so,
    for exactly-once: Delta then rebuilds the table's state to look the id up); and an insert of
    new keys by MERGE within a time range (silver's dedupe, one per silver table a batch touches)."""
    table = "floor_commits"
    path = lake.table_path(config, "bronze", table)
    rows = lambda start, count=100: spark.range(start, start + count).select(  # noqa: E731
        F.expr("uuid()").alias("event_id"), F.current_timestamp().alias("event_at"), F.current_date().alias("event_date"),
        F.rand().alias("value"),
    )
    rows(0, 100_000).write.format("delta").partitionBy("event_date").save(path)
    now = datetime.now(timezone.utc)
    today, recent = now.date(), F.col("t.event_at") >= F.lit(now - timedelta(minutes=5))
    ways = {
        "append": lambda n: rows(n).write.format("delta").mode("append").save(path),
        "append_with_txn": lambda n: lake.append(rows(n), config, "bronze", table, ("floor", n)),
        "insert_new_merge": lambda n: lake.insert_new(
            rows(n), config, "bronze", table, ["event_id"], "event_date", [today], recent
        ),
    }
    result, start = {}, 100_000
    for way, commit in ways.items():
        seconds = []
        for repeat in range(warmup + repeats):
            start += 100
            started = time.monotonic()
            commit(start)
            seconds.append(time.monotonic() - started)
        result[f"commit_{way}_median_s"] = round(statistics.median(seconds[warmup:]), 2)
        print(f"one commit, {way}: median {result[f'commit_{way}_median_s']} s over {repeats}", flush=True)
    return result


def query_latency(warmup: int = 100, repeats: int = 200) -> dict:
    """A day of 1-minute rollups for 3 services x 6 metrics x 2 hosts, then the dashboard query:
    ``warmup`` runs, then ``repeats`` timed, through each way of asking by name:

    - Spark SQL in a warm session (the table named through the metastore, in a database of its
      own that is dropped after). A fresh session is slower for its first ~100 queries (the JVM
      compiles Spark's planner paths as they get hot: p95 727 ms over the first 50 runs, 336-401 ms
      from the 100th on); the metastore lookup adds 20-35 ms against a query by path.
    - ``lake.SqlReader`` (delta-rs and DataFusion in this process, no Spark), as dashboards and
      ``perflake query`` ask; each query reads the table's latest commit first.
    """
    name = f"query_{int(time.time())}"
    config = load_config(environ={**pipeline_environ(name), "PERFLAKE__METASTORE__ENABLED": "true"})
    database, table = f"bench_{name}", "metric_rollups_1m"
    spark = get_spark(config, app_name="perflake-bench-query")
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    minutes = spark.range(24 * 60).select((F.lit(end) - F.expr("make_dt_interval(0, 0, CAST(id AS INT), 0)")).alias("window_at"))
    series = spark.createDataFrame(
        [(m, s, h)
         for m in ("response_time_ms", "cpu_percent", "memory_used_bytes", "gc_pause_ms", "throughput_rps", "error_count")
         for s in ("ws2-protocol-engine", "ws3-account-management", "ws4-market-integration") for h in ("app-1", "app-2")],
        "metric STRING, service STRING, host STRING",
    )
    rows = minutes.crossJoin(series).select(
        "metric", "service", F.lit(None).cast("string").alias("endpoint"), "host", "window_at", F.lit("ms").alias("unit"),
        F.lit(60).cast("long").alias("n_samples"),
        *(F.rand().alias(c) for c in ("sum_value", "min_value", "max_value", "mean_value", "p50_value", "p95_value",
                                      "p99_value")),
        F.lit(0).cast("long").alias("n_errors"), F.lit(0.0).alias("error_rate"), F.lit(1.0).alias("samples_per_s"),
        F.to_date("window_at").alias("window_date"), F.current_timestamp().alias("updated_at"),
    )
    path = lake.table_path(config, "gold", table)
    rows.write.format("delta").mode("overwrite").partitionBy("window_date").save(path)
    spark.sql(f"CREATE DATABASE {database} LOCATION '{config.lake.root}/{database}'")
    spark.sql(f"CREATE TABLE {database}.{table} USING DELTA LOCATION '{path}'")
    since = end - timedelta(hours=24)
    query = (
        f"SELECT window_at, sum(n_samples) AS n, max(p95_value) AS p95 FROM gold.{table} "
        f"WHERE service = 'ws4-market-integration' AND metric = 'response_time_ms' "
        f"AND window_at >= TIMESTAMP '{since:%Y-%m-%d %H:%M:%S}' "
        f"AND window_date >= DATE '{since.date().isoformat()}' GROUP BY window_at ORDER BY window_at"
    )
    reader = lake.SqlReader(config)
    ways = {
        "spark": lambda: spark.sql(query.replace(f"gold.{table}", f"{database}.{table}")).collect(),
        "reader": lambda: reader.query(query),
    }
    result = {}
    try:
        for way, ask in ways.items():
            print(f"gold query ({way}): {warmup} queries to warm up, then {repeats} timed ...", flush=True)
            for _ in range(warmup):
                ask()
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                fetched = ask()
                seconds.append(time.perf_counter() - started)
            seconds.sort()
            p50_ms, p95_ms = round(at_share(seconds, 0.5) * 1000), round(at_share(seconds, 0.95) * 1000)
            print(f"gold query ({way}, {len(fetched)} rows): p50 {p50_ms} ms, p95 {p95_ms} ms", flush=True)
            result.update({f"query_{way}_rows": len(fetched), f"query_{way}_p50_ms": p50_ms, f"query_{way}_p95_ms": p95_ms})
    finally:
        spark.sql(f"DROP DATABASE {database} CASCADE")
    spark.stop()
    remove_lake(config)
    return result


def end_to_end_latency(seconds: int, rate: int, warmup_seconds: int, history_events: int, drivers: str | None) -> dict:
    """Start the streams (in ``drivers``: one or per layer) over ``history_events`` of the past day (a lake in production is not
    empty: the work of a batch must not grow with it), warm them up with ``warmup_seconds`` of
    traffic (a fresh driver's first batches pay for code generation and loading classes), then
    measure ``seconds``."""
    name = f"latency-{int(time.time())}"
    env = pipeline_environ(name, drivers)
    config = load_config(environ=env)
    ensure_topics(config, family_topics(config, CONTRACTS))
    history = sample_events(history_events, datetime.now(timezone.utc) - timedelta(minutes=15), seed=7, span=timedelta(hours=24))
    produce_all(config, history)
    history_metrics = sum(1 for event in history if event["event_type"] == "metric")
    print(f"history: {history_events} events of the past day in Kafka before the jobs start")
    runner.start(config, environ=env)
    spark = get_spark(config, app_name="perflake-bench-latency")
    try:
        wait_streams_ready(config)
        started = time.time()
        warmup = produce_steadily(config, warmup_seconds, rate, seed=500, already=history_metrics)
        watch_gold(spark, config, warmup[-1][1], timeout_s=1200)
        warm_s = time.time() - started
        print(f"warm-up: the history and {warmup[-1][1] - history_metrics} metric events in gold "
              f"{warm_s:.1f} s after the first was sent")
        measured_from = time.time()
        cohorts = produce_steadily(config, seconds, rate, seed=1000, already=warmup[-1][1])
        seen = watch_gold(spark, config, cohorts[-1][1])
        streams = [stream for item in runner.status(config) for stream in item.streams]
        batches = {stream: batch_seconds(config, stream, measured_from) for stream in streams}
    finally:
        runner.stop(config)
        spark.stop()
    latencies = []
    for created, cumulative in cohorts:
        arrival = next((t for t, count in seen if count >= cumulative), None)
        if arrival is not None:
            latencies.append(max(0.0, arrival - created))
    latencies.sort()
    result = {
        "drivers": config.pipeline.drivers,
        "history_events": history_events,
        "warmup_s": round(warm_s, 1),
        "latency_cohorts": len(cohorts),
        "latency_cohorts_seen": len(latencies),
        "latency_p50_s": round(statistics.median(latencies), 1) if latencies else None,
        "latency_p95_s": round(at_share(latencies, 0.95), 1) if latencies else None,
        "batch_s": batches,
    }
    print(f"event -> gold latency: {result}")
    remove_lake(config)  # its run state too; a failed run keeps both for its logs
    return result


def batch_seconds(config, stream: str, since: float) -> dict:
    """Median and longest duration of a stream's batches started after ``since``, from its
    checkpoint (an offsets file is written as a batch starts, its commit file as it ends)."""
    checkpoint = Path(lake.checkpoint_path(config, stream).removeprefix("file://"))
    durations = sorted(
        (checkpoint / "commits" / path.name).stat().st_mtime - path.stat().st_mtime
        for path in (checkpoint / "offsets").iterdir()
        if path.name.isdigit() and path.stat().st_mtime >= since and (checkpoint / "commits" / path.name).exists()
    )
    if not durations:
        return {"batches": 0}
    return {"batches": len(durations), "median_s": round(statistics.median(durations), 1), "max_s": round(durations[-1], 1)}


def produce_steadily(config, seconds: int, rate: int, seed: int, already: int) -> list[tuple[float, int]]:
    """``rate`` fresh events a second for ``seconds``; returns (sent at, metric events sent so far)."""
    cohorts = []
    total = already
    for second in range(seconds):
        batch = sample_events(rate, datetime.now(timezone.utc), seed=seed + second, span=timedelta(milliseconds=1))
        for event in batch:
            event["event_at"] = datetime.now(timezone.utc).isoformat()
        created = time.time()
        produce_all(config, batch)
        total += sum(1 for e in batch if e["event_type"] == "metric")
        cohorts.append((created, total))
        time.sleep(max(0.0, 1 - (time.time() - created)))
    return cohorts


def watch_gold(spark, config, total: int, timeout_s: float = 300) -> list[tuple[float, int]]:
    """Poll gold's sample count until it reaches ``total``; returns (time, count) observations."""
    seen = []
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        count = gold_count(spark, config)
        seen.append((time.time(), count))
        if count >= total:
            break
        time.sleep(0.5)
    return seen


def gold_count(spark, config) -> int:
    if not lake.table_exists(spark, config, "gold", "metric_rollups_1m"):
        return 0
    return lake.read_table(spark, config, "gold", "metric_rollups_1m").agg(F.coalesce(F.sum("n_samples"), F.lit(0))).first()[0]


def wait_streams_ready(config, timeout_s: float = 300) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        statuses = runner.status(config)
        if all(item.streams for item in statuses):
            return
        if any(item.state == "dead" for item in statuses):
            raise RuntimeError(f"a pipeline job died; see {[str(i.log_file) for i in statuses]}")
        time.sleep(2)
    raise RuntimeError("the pipeline jobs did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--latency-seconds", type=int, default=60)
    parser.add_argument("--throughput-warmup-events", type=int, default=100_000, help="events taken before the timed ones")
    parser.add_argument("--events-per-message", type=int, default=1, help="events in a Kafka message (agents pack many)")
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--warmup-seconds", type=int, default=20, help="traffic before the latency is measured")
    parser.add_argument("--history-events", type=int, default=200_000,
                        help="events of the past day the lake holds before the latency run")
    all_parts = ",".join(PARTS)
    parser.add_argument("--parts", default=all_parts, help=f"which measurements, comma-separated (default: {all_parts})")
    parser.add_argument("--drivers", choices=sorted(runner.DRIVER_LAYOUTS),
                        help="the streams' driver layout (default: the profile's pipeline.drivers)")
    args = parser.parse_args()
    parts = args.parts.split(",")
    for option in ("events", "events_per_message"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown --parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    results = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cores": os.cpu_count()}
    if "throughput" in parts:
        results.update(throughput_and_storage(args.events, args.throughput_warmup_events, args.events_per_message))
    if "floor" in parts:
        results.update(spark_floor(args.events))
    if "query" in parts:
        results.update(query_latency())
    if "latency" in parts:
        results.update(
            end_to_end_latency(args.latency_seconds, args.rate, args.warmup_seconds, args.history_events, args.drivers)
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
