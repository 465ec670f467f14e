"""Running the pipeline's streams: in a job (``supervise``) and as background processes
(``start``/``stop``/``status``, behind ``perflake pipeline``).

``pipeline.drivers`` lays the layers out over spark-submit processes (drivers):

- ``one``: the three layers' streams in one driver, sharing its executors under the FAIR
  scheduler (a pool per layer). On a small machine this saves two JVMs' worth of CPU and
  memory; a crash or restart takes all three layers down and up together.
- ``per_layer``: a driver per layer, so one layer's crash or restart leaves the others running
  and each can be sized on its own (a cluster's choice).

Each driver writes its layers' progress to ``state/run/pipeline-<layer>.json``. Stopping sends
SIGTERM: the job stops its queries between micro-batches. Data on a crash of either layout:
every stream restarts from its checkpoint (see ``streams``), so nothing is lost or repeated.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from perflake.config import Config, ConfigError
from perflake.services.process import ManagedProcess

LAYERS = ("bronze", "silver", "gold")
DRIVER_LAYOUTS = {"one": (LAYERS,), "per_layer": tuple((layer,) for layer in LAYERS)}
JOBS = {
    ("bronze",): "jobs/bronze_events.py",
    ("silver",): "jobs/silver_events.py",
    ("gold",): "jobs/gold_tables.py",
    LAYERS: "jobs/medallion_streams.py",
}
PROGRESS_INTERVAL_S = 2.0


def drivers(config: Config) -> tuple[tuple[str, ...], ...]:
    """The layers each driver process runs, in pipeline order."""
    try:
        return DRIVER_LAYOUTS[config.pipeline.drivers]
    except KeyError:
        raise ConfigError(f"pipeline.drivers is {config.pipeline.drivers!r}; "
                          f"expected one of {', '.join(DRIVER_LAYOUTS)}") from None


def driver_of(config: Config, layer: str) -> tuple[str, ...]:
    return next(layers for layers in drivers(config) if layer in layers)


def progress_file(config: Config, layer: str) -> Path:
    return config.paths.state_dir / "run" / f"pipeline-{layer}.json"


def process_of(config: Config, layer: str) -> ManagedProcess:
    """The process of the driver that runs ``layer``."""
    name = "pipeline-" + "-".join(driver_of(config, layer))
    return ManagedProcess(name, config.paths.state_dir / "run", config.paths.state_dir / "logs")


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


def supervise(queries: dict[str, list], config: Config, totals: ProgressTotals) -> None:
    """Wait on each layer's queries, writing their progress; SIGTERM stops them between batches.

    Raises the first query's failure, so the process exits non-zero and `pipeline status`
    shows it dead; restarting resumes from the checkpoints.
    """
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    every_query = [query for layer_queries in queries.values() for query in layer_queries]
    try:
        while not stopping.is_set():
            for query in every_query:
                if query.exception() is not None:
                    raise RuntimeError(f"stream {query.name} failed: {query.exception()}")
            for layer, layer_queries in queries.items():
                write_progress(progress_file(config, layer), layer_queries, totals)
            if not any(query.isActive for query in every_query):
                return
            stopping.wait(PROGRESS_INTERVAL_S)
    finally:
        for query in every_query:
            query.stop()


def write_progress(path: Path, queries: list, totals: ProgressTotals) -> None:
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
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"written_at": time.time(), "streams": summary}, indent=2))
    temporary.replace(path)  # readers never see a half-written file


def start(config: Config, layers: tuple[str, ...] = LAYERS, environ: dict[str, str] | None = None) -> list[str]:
    """Start the drivers of ``layers`` that are not running; returns the layers started
    (with ``drivers = "one"``, starting any layer starts all three).

    A job loads its own config from the environment: ``environ`` must select the same
    profile and overrides as ``config`` (the default, this process's environment, does).
    """
    from perflake.spark import spark_submit_command

    started = []
    for driver in drivers(config):
        process = process_of(config, driver[0])
        if not set(driver) & set(layers) or process.is_running():
            continue
        for layer in driver:  # an earlier run's progress must not pass for this one's (a stale "idle")
            progress_file(config, layer).unlink(missing_ok=True)
        process.start(spark_submit_command(config, config.project_dir / JOBS[driver], []), env=environ)
        started += driver
    return started


def stop(config: Config, layers: tuple[str, ...] = LAYERS, timeout_s: float = 60) -> list[str]:
    """Stop the running drivers of ``layers``, gold's first (so it never reads a half-stopped
    silver); returns the layers stopped (with ``drivers = "one"``, stopping any stops all)."""
    stopped = []
    for driver in reversed(drivers(config)):
        if set(driver) & set(layers) and process_of(config, driver[0]).stop(timeout_s):
            stopped += reversed(driver)
    return stopped


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


def run_layers(layers: tuple[str, ...], description: str, argv: list[str] | None = None) -> None:
    """The body of a driver's job: parse its option, start its layers' streams, supervise them.

    Several layers share the driver's cores under the FAIR scheduler, a pool per layer, so a
    long gold batch does not hold back bronze and silver (the default, FIFO, runs jobs in turn).
    """
    from perflake.config import get_config
    from perflake.contracts import load_contracts
    from perflake.pipeline.streams import STARTERS
    from perflake.spark import get_spark

    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--available-now", action="store_true", help="process what the source holds now, then exit")
    args = parser.parse_args(argv)
    config = get_config()
    shared = {"spark.scheduler.mode": "FAIR",
              "spark.scheduler.allocation.file": str(config.project_dir / "conf" / "fairscheduler.xml")}
    spark = get_spark(config, app_name="perflake-" + "-".join(layers), extra_conf=shared if len(layers) > 1 else {})
    totals = ProgressTotals()
    spark.streams.addListener(totals.listener())
    contracts = load_contracts()
    queries = {}
    try:
        for layer in layers:
            # a query's micro-batches run in the pool set on the thread that starts it
            spark.sparkContext.setLocalProperty("spark.scheduler.pool", layer)
            queries[layer] = STARTERS[layer](spark, config, contracts, args.available_now)
        supervise(queries, config, totals)
    finally:
        spark.stop()
