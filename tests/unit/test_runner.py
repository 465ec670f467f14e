import sys

import pytest

from perflake.config import ConfigError
from perflake.pipeline import runner
from tests.support import make_config

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_stop_stops_only_the_layers_named(tmp_path):
    config = make_config("local", tmp_path, PERFLAKE__PIPELINE__DRIVERS="per_layer")
    for layer in ("bronze", "silver"):
        runner.process_of(config, layer).start(SLEEPER)
    try:
        assert runner.stop(config, layers=("silver",), timeout_s=5) == ["silver"]
        assert {item.layer: item.state for item in runner.status(config)} == {"bronze": "running", "silver": "stopped",
                                                                              "gold": "stopped"}
    finally:
        runner.stop(config, timeout_s=5)


def test_one_driver_runs_and_stops_every_layer_together(tmp_path):
    config = make_config("local", tmp_path, PERFLAKE__PIPELINE__DRIVERS="one")
    assert runner.drivers(config) == (runner.LAYERS,)
    runner.process_of(config, "bronze").start(SLEEPER)
    try:
        assert {item.layer: item.state for item in runner.status(config)} == dict.fromkeys(runner.LAYERS, "running")
        assert runner.start(config, layers=("gold",)) == []  # its driver is running already
        assert runner.stop(config, layers=("silver",), timeout_s=5) == ["gold", "silver", "bronze"]
        assert {item.state for item in runner.status(config)} == {"stopped"}
    finally:
        runner.stop(config, timeout_s=5)


def test_a_started_driver_shows_no_progress_of_an_earlier_run(tmp_path, monkeypatch):
    monkeypatch.setattr("perflake.spark.spark_submit_command", lambda *_: SLEEPER)
    config = make_config("local", tmp_path)
    for layer in runner.LAYERS:
        runner.progress_file(config, layer).parent.mkdir(parents=True, exist_ok=True)
        runner.progress_file(config, layer).write_text('{"streams": {"old": {"total_input_rows": 240000, "idle": true}}}')
    try:
        assert runner.start(config) == list(runner.LAYERS)
        assert [item.streams for item in runner.status(config)] == [{}, {}, {}]
    finally:
        runner.stop(config, timeout_s=5)


def test_an_unknown_driver_layout_is_named(tmp_path):
    config = make_config("local", tmp_path, PERFLAKE__PIPELINE__DRIVERS="two")
    with pytest.raises(ConfigError, match="pipeline.drivers is 'two'; expected one of one, per_layer"):
        runner.start(config)


def test_status_reads_each_streams_progress(tmp_path):
    config = make_config("local", tmp_path)
    runner.progress_file(config, "gold").parent.mkdir(parents=True)
    runner.progress_file(config, "gold").write_text('{"streams": {"gold_tables": {"batch_id": 4, "idle": true}}}')
    gold = {item.layer: item for item in runner.status(config)}["gold"]
    assert gold.streams == {"gold_tables": {"batch_id": 4, "idle": True}}


def test_query_summary_reports_backlog_and_rates():
    progress = {
        "batchId": 7, "timestamp": "2026-11-24T07:00:00.000Z", "numInputRows": 500, "inputRowsPerSecond": 250.04,
        "processedRowsPerSecond": 1000.0, "durationMs": {"triggerExecution": 480},
        "sources": [{"metrics": {"maxOffsetsBehindLatest": "12", "avgOffsetsBehindLatest": "3.0"}}],
    }
    assert runner.query_summary(progress) == {
        "batch_id": 7, "batch_at": "2026-11-24T07:00:00.000Z", "input_rows": 500, "input_rows_per_s": 250.0,
        "processed_rows_per_s": 1000.0, "batch_ms": 480, "behind": {"maxOffsetsBehindLatest": 12},
    }
