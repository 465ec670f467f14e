"""Item 6 of the foundation: kafka-python -> Kafka -> Structured Streaming -> Delta, on both profiles."""

from datetime import datetime, timezone

import pytest

from perflake import lake, smoke
from perflake.kafka import ensure_topics, produce_json
from perflake.lake import list_webhdfs
from tests.support import TEST_HDFS_ROOT, make_config, make_environ, run_perflake


@pytest.fixture(params=["local", "hdfs"])
def profile_config(request, running_services, state_dir):
    return make_config(request.param, state_dir)


def test_streamed_events_land_in_delta_once(spark, profile_config):
    first = smoke.run_smoke(spark, profile_config, 200, say=print)
    assert (first.produced, first.landed) == (200, 200)
    second = smoke.run_smoke(spark, profile_config, 50, say=print)
    # the checkpoint resumes after the first run: nothing of it is read twice
    assert (second.landed, second.table_rows) == (50, first.table_rows + 50)
    assert second.table_path.startswith("hdfs://" if profile_config.profile == "hdfs" else "file://")


def test_hdfs_tables_are_listed_through_webhdfs(spark, hdfs_config):
    smoke.run_smoke(spark, hdfs_config, 10, say=print)
    files = list_webhdfs(hdfs_config, lake.table_path(hdfs_config, smoke.LAYER, smoke.TABLE))
    names = [path for path, _ in files]
    assert any("/_delta_log/00000000000000000000.json" in name for name in names)
    assert any(name.endswith(".parquet") for name in names)
    assert all(size > 0 for path, size in files if path.endswith(".parquet"))


def messages_on(config, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=config.kafka.bootstrap_servers)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def test_the_job_runs_through_spark_submit(running_services, state_dir):
    """spark-submit starts the JVM before Python runs: the jars must come from its command line."""
    env = make_environ(state_dir, PERFLAKE_PROFILE="hdfs", PERFLAKE__LAKE__ROOT=f"{TEST_HDFS_ROOT}-submit")
    topic = running_services.topic(smoke.TOPIC_KEY)
    ensure_topics(running_services, [topic])
    produce_json(running_services, topic, smoke.smoke_events("submit", 20, datetime.now(timezone.utc)), "event_id")
    expected = messages_on(running_services, topic)
    result = run_perflake(["submit", "jobs/smoke_ingest.py"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"bronze.smoke_events: {expected} rows at {TEST_HDFS_ROOT}-submit/bronze/smoke_events" in result.stdout
