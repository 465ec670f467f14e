"""Helpers for tests: configs that point at a temporary state folder and test ports, so a
test never touches a developer's running services or lake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from perflake.config import Config, load_config

PROJECT_DIR = Path(__file__).resolve().parent.parent
# Ports of the test services, away from the defaults a developer's `perflake services up` uses.
TEST_SETTINGS = {
    "PERFLAKE__SERVICES__KAFKA__PORT": "19092",
    "PERFLAKE__SERVICES__KAFKA__CONTROLLER_PORT": "19093",
    "PERFLAKE__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:19092",
    "PERFLAKE__SERVICES__HDFS__NAMENODE_RPC_PORT": "18020",
    "PERFLAKE__SERVICES__HDFS__NAMENODE_HTTP_PORT": "19870",
    "PERFLAKE__SERVICES__HDFS__DATANODE_PORT": "19866",
    "PERFLAKE__SERVICES__HDFS__DATANODE_HTTP_PORT": "19864",
    "PERFLAKE__SERVICES__HDFS__DATANODE_IPC_PORT": "19867",
    "PERFLAKE__HDFS__WEBHDFS_URL": "http://127.0.0.1:19870",
    # the in-process test session has no metastore; SQL tests turn it on for their child processes
    "PERFLAKE__METASTORE__ENABLED": "false",
    "PERFLAKE__METASTORE__PORT": "11527",
    "PERFLAKE__METASTORE__THRIFT_PORT": "11000",
    "PERFLAKE__SPARK__MASTER": "local[2]",
    "PERFLAKE__SPARK__SHUFFLE_PARTITIONS": "2",
}
TEST_HDFS_ROOT = "hdfs://127.0.0.1:18020/perflake-test"


def make_environ(state_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a test's perflake process: this one's, less PERFLAKE*, plus test settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PERFLAKE")}
    env.update(TEST_SETTINGS)
    env["PERFLAKE__PATHS__STATE_DIR"] = str(state_dir)
    # the jars stay where `make setup` resolved them
    env["PERFLAKE__PATHS__JARS_DIR"] = str(load_config("local", {}).paths.jars_dir)
    env["PERFLAKE__LAKE__ROOT"] = (state_dir / "lake").as_uri()
    env.update(overrides)
    return env


def make_config(profile: str, state_dir: Path, **overrides: str) -> Config:
    if profile == "hdfs":
        overrides.setdefault("PERFLAKE__LAKE__ROOT", TEST_HDFS_ROOT)
    return load_config(profile, make_environ(state_dir, **overrides))


def run_perflake(args: list[str], env: dict[str, str], timeout_s: float = 600) -> subprocess.CompletedProcess:
    """The perflake command as a user runs it, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "perflake.cli", *args], env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=timeout_s
    )


def consume_events(config: Config, keep: Callable[[dict], bool], expected: int, timeout_s: float = 60) -> list[dict]:
    """Every copy of the events on the config's topics that ``keep`` accepts (messages hold one
    envelope or a batch), read until ``expected`` distinct ones arrived and a second passed."""
    from kafka import KafkaConsumer

    from perflake.kafka import client_settings

    consumer = KafkaConsumer(*config.kafka.topics.values(), **client_settings(config), auto_offset_reset="earliest", enable_auto_commit=False)
    events: list[dict] = []
    ids: set[str] = set()
    deadline = time.monotonic() + timeout_s
    quiet_until = None
    try:
        while time.monotonic() < deadline and (quiet_until is None or time.monotonic() < quiet_until):
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    body = json.loads(record.value)
                    found = [event for event in (body if isinstance(body, list) else [body]) if keep(event)]
                    events += found
                    ids.update(event["event_id"] for event in found)
            if quiet_until is None and len(ids) >= expected:
                quiet_until = time.monotonic() + 1  # anything more (a duplicate) would have arrived by now
    finally:
        consumer.close()
    return events


def pipeline_overrides(state_dir: Path, name: str) -> dict[str, str]:
    """Own topics and lake per test, so tests never read each other's events."""
    from perflake.contracts import load_contracts

    families = sorted({contract.family for contract in load_contracts().values()})
    topics = {f"PERFLAKE__KAFKA__TOPICS__{family.upper()}": f"perflake.test.{name}.{family}" for family in families}
    return {**topics, "PERFLAKE__LAKE__ROOT": (state_dir / "lakes" / name).as_uri()}


def pipeline_config(state_dir: Path, name: str) -> Config:
    return make_config("local", state_dir, **pipeline_overrides(state_dir, name))


def run_once(spark, config: Config, contracts=None) -> None:
    """Bronze, silver, gold, each processing what its source holds now."""
    from perflake.contracts import load_contracts
    from perflake.kafka import ensure_topics
    from perflake.pipeline import runner
    from perflake.pipeline.streams import STARTERS, family_topics

    contracts = contracts or load_contracts()
    ensure_topics(config, family_topics(config, contracts))
    for layer in runner.LAYERS:
        for query in STARTERS[layer](spark, config, contracts, available_now=True):
            query.awaitTermination()
