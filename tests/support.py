"""Helpers for tests: configs that point at a temporary state folder and test ports, so a
test never touches a developer's running services or lake."""

from __future__ import annotations

import os
import subprocess
import sys
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


def log_spike_evaluation(config: Config, detector: str) -> str:
    """One tracked evaluation of ``detector`` on the synthetic spike series (fixed level, with its plot); the run's id."""
    import numpy as np

    from perflake.anomaly import evaluate as ev
    from perflake.anomaly import charts, tracking
    from tests import synthetic as syn

    frame = syn.with_anomaly("spike")
    rows = np.arange(len(frame))
    segment = np.where((rows >= syn.START) & (rows < syn.START + syn.LENGTH), 0, -1)
    series = ev.Series("synthetic/spike", frame.iloc[: syn.FIT_ROWS], frame, segment, "synthetic")
    scored = ev.score_series(series, detector, {}, ev.DEFAULT_REFRACTORY_ROWS)
    evaluation = ev.evaluate("synthetic", [series], {series.name: scored}, detector, "fixed")
    figure = charts.detection_figure(series, scored.levels, ev.FIXED_LEVEL)
    return tracking.log_evaluation(config, evaluation, {"refractory_rows": ev.DEFAULT_REFRACTORY_ROWS}, {"spike.png": figure})
