"""The feature job's cost, every day against one day (docs/benchmarks.md has the figures).

    .venv/bin/python benchmarks/feature_job.py [--days 14] [--sources 18] [--metrics 6]

Writes a gold.metric_rollups_1m of --days days of minutes (each source's metrics a daily cycle
and noise, every minute) to its own lake under state/bench/features, then runs
``perflake submit jobs/metric_features.py`` as a user does: once over every day, then with
``--since`` the last day, as a nightly run would. Prints each run's wall time (spark-submit's
start included) and rows, and checks that the two runs wrote the last day's features alike (its
rows from the first run are read back by Delta time travel). Needs no services.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from delta.tables import DeltaTable

from perflake import lake
from perflake.config import load_config
from perflake.spark import get_spark
from support import bench_environ

ROLLUPS = "service STRING, endpoint STRING, host STRING, metric STRING, window_at TIMESTAMP, mean_value DOUBLE, window_date DATE"


def rollups(days: int, sources: int, metrics: int, seed: int = 0) -> pd.DataFrame:
    """One row per source, metric and minute: a daily cycle, a level per metric, and noise."""
    rng = np.random.default_rng(seed)
    minutes = pd.date_range("2026-11-02", periods=days * 1440, freq="min")
    daily = np.sin(2 * np.pi * np.arange(len(minutes)) / 1440)
    frames = []
    for source in range(sources):
        for metric in range(metrics):
            level = 10.0 ** rng.integers(0, 6)
            frames.append(pd.DataFrame({
                "service": f"service-{source}", "endpoint": None, "host": f"host-{source}", "metric": f"metric_{metric}",
                "window_at": minutes, "mean_value": level * (1 + 0.3 * daily + 0.05 * rng.standard_normal(len(minutes))),
            }))
    frame = pd.concat(frames, ignore_index=True)
    return frame.assign(window_date=frame["window_at"].dt.date)


def run_job(args: list[str], env: dict[str, str]) -> None:
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "perflake.cli", "submit", "jobs/metric_features.py", *args], env=env,
                         capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"the feature job {' '.join(args) or '(every day)'} failed:\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
    seconds = time.monotonic() - started
    print(f"  {' '.join(args) or 'every day'}: {seconds:.0f} s; {run.stdout.strip().splitlines()[-1]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--sources", type=int, default=18)
    parser.add_argument("--metrics", type=int, default=6)
    args = parser.parse_args()
    env = bench_environ("features")
    shutil.rmtree(env["PERFLAKE__LAKE__ROOT"], ignore_errors=True)
    config = load_config(None, env)
    spark = get_spark(config, app_name="perflake-bench-features")
    try:
        gold = rollups(args.days, args.sources, args.metrics)
        print(f"writing gold.metric_rollups_1m: {len(gold):,} rows ({args.days} days, {args.sources} sources, "
              f"{args.metrics} metrics) ...", flush=True)
        lake.ensure_table(spark, config, "gold", "metric_rollups_1m", spark.createDataFrame([], ROLLUPS).schema, ["window_date"])
        lake.append(spark.createDataFrame(gold, ROLLUPS), config, "gold", "metric_rollups_1m", ("bench-rollups", 0))
        last_day = gold["window_date"].max()
        print("running the feature job ...", flush=True)
        run_job([], env)
        path = lake.table_path(config, "gold", "metric_features_1m")
        first_version = DeltaTable.forPath(spark, path).history(1).first().version
        run_job(["--since", last_day.isoformat()], env)
        keys = ["service", "window_at", "metric", "feature"]
        day = f"window_date = DATE'{last_day.isoformat()}'"
        first = spark.read.format("delta").option("versionAsOf", first_version).load(path).where(day)
        second = spark.read.format("delta").load(path).where(day)
        joined = first.alias("a").join(second.alias("b"), keys, "full_outer")
        unmatched = joined.where("a.value IS NULL OR b.value IS NULL").count()
        largest = joined.selectExpr("max(abs(a.value - b.value) / greatest(abs(a.value), 1e-9)) AS d").first().d
        print(f"the last day's features: {second.count():,} rows; {unmatched} rows in one run only; "
              f"largest relative difference {largest:.1e}", flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
