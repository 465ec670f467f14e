"""SQL on gold by name through the shared metastore: spark-sql and JDBC (Thrift server + beeline),
from processes other than the jobs that wrote the tables."""

import subprocess
from datetime import datetime, timezone

import pytest

from perflake import services, sql
from perflake.contracts import load_contracts
from perflake.events import sample_events
from perflake.kafka import ensure_topics, produce_events
from perflake.pipeline.streams import family_topics
from tests.integration.test_pipeline import metric_count, pipeline_overrides
from tests.support import make_config, make_environ, run_perflake

CONTRACTS = load_contracts()


@pytest.fixture(scope="module")
def named_lake(running_services, state_dir):
    """A lake filled by the three jobs (spark-submit, --available-now), tables named in the metastore."""
    overrides = {**pipeline_overrides(state_dir, "sql"), "PERFLAKE__METASTORE__ENABLED": "true"}
    config = make_config("local", state_dir, **overrides)
    environ = make_environ(state_dir, **overrides)
    services.up(config, say=print)  # starts the metastore's Derby server (Kafka already runs)
    ensure_topics(config, family_topics(config, CONTRACTS))
    events = sample_events(1000, datetime.now(timezone.utc), seed=51)
    produce_events(config, CONTRACTS, events)
    for job in ("jobs/bronze_events.py", "jobs/silver_events.py", "jobs/gold_tables.py"):
        result = run_perflake(["submit", job, "--available-now"], environ)
        assert result.returncode == 0, result.stderr[-3000:]
    yield config, environ, events
    services.down(config, say=print, only=["metastore"])


def test_spark_sql_queries_gold_by_name(named_lake):
    config, environ, events = named_lake
    result = run_perflake(["sql", "-e", "SELECT sum(n_samples) FROM gold.metric_rollups_1m"], environ)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(metric_count(events))


def test_jdbc_clients_query_gold_through_the_thrift_server(named_lake):
    config, environ, events = named_lake
    result = run_perflake(["sql-server", "start"], environ)
    assert result.returncode == 0, result.stderr[-3000:]
    try:
        query = "SELECT count(*) AS n FROM silver.metrics"
        answer = subprocess.run(sql.beeline_command(config, query), capture_output=True, text=True, timeout=120, env=environ)
        header, value = answer.stdout.strip().splitlines()[-2:]  # beeline puts its prompt before the header
        assert (header.endswith("> n"), value) == (True, str(metric_count(events))), answer.stdout + answer.stderr
    finally:
        run_perflake(["sql-server", "stop"], environ)


def test_without_a_metastore_sql_says_why(state_dir):
    result = run_perflake(["sql", "-e", "SELECT 1"], make_environ(state_dir, PERFLAKE__METASTORE__ENABLED="false"))
    assert result.returncode == 2
    assert "has no metastore (metastore.enabled = false)" in result.stderr
