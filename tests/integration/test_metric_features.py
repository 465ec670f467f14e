"""The feature job as a user runs it (``perflake submit``) on real Spark and Delta: gold rollups -> gold.metric_features_1m."""

import numpy as np
import pandas as pd

from perflake import lake
from perflake.anomaly.features import DETECTOR_FEATURES, source_features
from tests import synthetic as syn
from tests.support import make_config, make_environ, run_perflake

ROLLUPS = "window_at TIMESTAMP, metric STRING, mean_value DOUBLE, p95_value DOUBLE, service STRING, endpoint STRING, host STRING"
ROLLUPS_COLUMNS = [field.split()[0] for field in ROLLUPS.split(", ")]


def test_the_job_builds_a_slice_per_feature_set_and_rollup_and_rebuilds_it_in_place(spark, state_dir, tmp_path):
    lake_root = (tmp_path / "lake").as_uri()
    env = make_environ(state_dir, PERFLAKE__LAKE__ROOT=lake_root)
    config = make_config("local", state_dir, PERFLAKE__LAKE__ROOT=lake_root)
    job = ["submit", "jobs/metric_features.py"]

    before_gold = run_perflake(job, env)
    # spark-submit passes the Python driver's stderr on to its stdout
    assert before_gold.returncode != 0 and "gold.metric_rollups_1m does not exist" in before_gold.stdout + before_gold.stderr

    host = syn.clean(rows=400).rename(columns={"value": "cpu_percent"})
    host["memory_used_bytes"] = 2e9 + np.random.default_rng(2).normal(0, 1e7, len(host))
    endpoint = syn.clean(rows=300).rename(columns={"value": "response_time_ms"})
    sources = [syn.gold_rows(host, service="host", endpoint=None, host="app-1"),
               syn.gold_rows(endpoint, service="ws4-market-integration", endpoint="/orders", host="app-1")]
    sources = [rows.assign(p95_value=rows["mean_value"] * 1.5)[ROLLUPS_COLUMNS] for rows in sources]
    lake.append(spark.createDataFrame(pd.concat(sources), ROLLUPS), config, "gold", "metric_rollups_1m",
                ("test-rollups", 0))

    for args in ([], ["--rollup-column", "p95_value"], []):  # the third run rebuilds the first's slice
        run = run_perflake([*job, *args], env)
        assert run.returncode == 0, run.stderr[-3000:]
    table = lake.read_table(spark, config, "gold", "metric_features_1m").toPandas()

    order = ["service", "endpoint", "window_at", "metric", "feature"]
    for rollup_column in ("mean_value", "p95_value"):
        expected = pd.concat([source_features(rows, DETECTOR_FEATURES, value_column=rollup_column)
                              .assign(service=rows["service"].iloc[0], endpoint=rows["endpoint"].iloc[0], host="app-1")
                              for rows in sources])
        got = table[table["rollup_column"] == rollup_column]
        assert (got["window_date"] == got["window_at"].dt.date).all()
        pd.testing.assert_frame_equal(got[expected.columns].sort_values(order).reset_index(drop=True),
                                      expected.sort_values(order).reset_index(drop=True), check_dtype=False, rtol=1e-12)
