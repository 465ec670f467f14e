"""Running the pipeline's streams: in a job (``supervise``) and as background processes
(``start``/``stop``/``status``, behind ``perflake pipeline``).

Each layer runs as its own spark-submit process, so one layer's crash or restart leaves the
others running; each process writes its streams' progress to ``state/run/pipeline-<layer>.json``.
Stopping sends SIGTERM: the job stops its queries between micro-batches.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from perflake.config import Config
from perflake.services.process import ManagedProcess

LAYERS = ("bronze", "silver", "gold")
JOBS = {"bronze": "jobs/bronze_events.py", "silver": "jobs/silver_events.py", "gold": "jobs/gold_tables.py"}
PROGRESS_INTERVAL_S = 2.0


def progress_file(config: Config, layer: str) -> Path:
    return config.paths.state_dir / "run" / f"pipeline-{layer}.json"


def process_of(config: Config, layer: str) -> ManagedProcess:
    return ManagedProcess(f"pipeline-{layer}", config.paths.state_dir / "run", config.paths.state_dir / "logs")


def query_summary(progress: dict | None) -> dict:
    """What status shows of a query's last progress: batch, rates, and how far behind its source is."""
    if not progress:
        return {"batch_id": None}
    behind = {}
    for source in progress.get("sources", []):
        metrics = source.get("metrics") or {}
        for key in ("maxOffsetsBehindLatest", "numFilesOutstanding", "numBytesOutstanding"):
            if metrics.get(key) is not None:
                behind[key] = int(float(metrics[key]))
    return {
        "batch_id": progress.get("batchId"),
        "batch_at": progress.get("timestamp"),
        "input_rows": progress.get("numInputRows"),
        "input_rows_per_s": round(progress.get("inputRowsPerSecond") or 0.0, 1),
        "processed_rows_per_s": round(progress.get("processedRowsPerSecond") or 0.0, 1),
        "batch_ms": (progress.get("durationMs") or {}).get("triggerExecution"),
        "behind": behind,
    }


class ProgressTotals:
    """Counts every micro-batch of this process's queries (a listener sees each one, where
    polling lastProgress would miss batches shorter than the polling interval)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows: dict[str, int] = {}
        self.batches: dict[str, int] = {}

    def add(self, name: str, rows: int) -> None:
        with self.lock:
            self.rows[name] = self.rows.get(name, 0) + rows
            self.batches[name] = self.batches.get(name, 0) + 1

    def listener(self):
        from pyspark.sql.streaming import StreamingQueryListener

        totals = self

        class Listener(StreamingQueryListener):
            def onQueryStarted(self, event):
                pass

            def onQueryProgress(self, event):
                totals.add(event.progress.name, event.progress.numInputRows)

            def onQueryIdle(self, event):
                pass

            def onQueryTerminated(self, event):
                pass

        return Listener()


def supervise(queries, config: Config, layer: str, totals: ProgressTotals) -> None:
    """Wait on the queries, writing their progress; SIGTERM stops them between batches.

    Raises the first query's failure, so the process exits non-zero and `pipeline status`
    shows it dead; restarting resumes from the checkpoints.
    """
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    path = progress_file(config, layer)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        while not stopping.is_set():
            for query in queries:
                if query.exception() is not None:
                    raise RuntimeError(f"stream {query.name} failed: {query.exception()}")
            with totals.lock:
                summary = {
                    query.name: {
                        **query_summary(query.lastProgress),
                        "active": query.isActive,
                        # nothing waiting in the source and no batch running
                        "idle": not query.status["isDataAvailable"] and not query.status["isTriggerActive"],
                        "total_input_rows": totals.rows.get(query.name, 0),
                        "total_batches": totals.batches.get(query.name, 0),
                    }
                    for query in queries
                }
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps({"written_at": time.time(), "streams": summary}, indent=2))
            temporary.replace(path)  # readers never see a half-written file
            if not any(query.isActive for query in queries):
                return
            stopping.wait(PROGRESS_INTERVAL_S)
    finally:
        for query in queries:
            query.stop()


def start(config: Config, layers: tuple[str, ...] = LAYERS, environ: dict[str, str] | None = None) -> list[str]:
    """Start the layers' jobs that are not running; returns those started.

    A job loads its own config from the environment: ``environ`` must select the same
    profile and overrides as ``config`` (the default, this process's environment, does).
    """
    from perflake.spark import spark_submit_command

    started = []
    for layer in layers:
        process = process_of(config, layer)
        if process.is_running():
            continue
        process.start(spark_submit_command(config, config.project_dir / JOBS[layer], []), env=environ)
        started.append(layer)
    return started


def stop(config: Config, layers: tuple[str, ...] = LAYERS, timeout_s: float = 60) -> list[str]:
    """Stop the running layers among ``layers`` (gold first, so it never reads a half-stopped silver)."""
    return [layer for layer in reversed(LAYERS) if layer in layers and process_of(config, layer).stop(timeout_s)]


@dataclass(frozen=True)
class LayerStatus:
    layer: str
    state: str  # running | dead | stopped
    streams: dict
    log_file: Path


def status(config: Config) -> list[LayerStatus]:
    statuses = []
    for layer in LAYERS:
        process = process_of(config, layer)
        try:
            streams = json.loads(progress_file(config, layer).read_text())["streams"]
        except (FileNotFoundError, ValueError, KeyError):
            streams = {}
        statuses.append(LayerStatus(layer, process.state(), streams, process.log_file))
    return statuses


def run_layer(layer: str, description: str, argv: list[str] | None = None) -> None:
    """The body of a layer's job: parse its option, start its streams, supervise them."""
    from perflake.config import get_config
    from perflake.contracts import load_contracts
    from perflake.pipeline.streams import STARTERS
    from perflake.spark import get_spark

    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--available-now", action="store_true", help="process what the source holds now, then exit")
    args = parser.parse_args(argv)
    config = get_config()
    spark = get_spark(config, app_name=f"perflake-{layer}")
    totals = ProgressTotals()
    spark.streams.addListener(totals.listener())
    try:
        supervise(STARTERS[layer](spark, config, load_contracts(), args.available_now), config, layer, totals)
    finally:
        spark.stop()
