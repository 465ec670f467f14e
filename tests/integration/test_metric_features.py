"""The feature job as a user runs it (``perflake submit``) on real Spark and Delta: gold rollups -> gold.metric_features_1m."""

import numpy as np
import pandas as pd

from perflake import lake
from perflake.anomaly.features import DETECTOR_FEATURES, source_features
from tests import synthetic as syn
from tests.support import make_config, make_environ, run_perflake

ROLLUPS = ("window_at TIMESTAMP, metric STRING, mean_value DOUBLE, p95_value DOUBLE, service STRING, endpoint STRING, "
           "host STRING, window_date DATE")
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
    sources = [rows.assign(p95_value=rows["mean_value"] * 1.5, window_date=rows["window_at"].dt.date)[ROLLUPS_COLUMNS]
               for rows in sources]
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


def test_a_run_since_a_day_starts_from_the_saved_seasonal_sums_as_a_whole_pass_would_and_keeps_the_days_before(
        spark, state_dir, tmp_path):
    lake_root = (tmp_path / "lake").as_uri()
    env = make_environ(state_dir, PERFLAKE__LAKE__ROOT=lake_root)
    config = make_config("local", state_dir, PERFLAKE__LAKE__ROOT=lake_root)
    since = pd.Timestamp("2026-01-20").date()  # 30-minute rows from 2026-01-05: 720 rows before it, over twice the lookback
    frame = syn.clean(rows=1000).rename(columns={"value": "cpu_percent"})
    frame["memory_used_bytes"] = 2e9 + np.random.default_rng(2).normal(0, 1e7, len(frame))
    rows = syn.gold_rows(frame, service="host", endpoint=None, host="app-1")
    rows = rows.assign(p95_value=0.0, window_date=rows["window_at"].dt.date)[ROLLUPS_COLUMNS]
    order = ["window_at", "metric", "feature"]

    def run_job(*args: str) -> str:
        run = run_perflake(["submit", "jobs/metric_features.py", *args], env)
        assert run.returncode == 0, run.stderr[-3000:]
        return run.stdout

    def feature_table() -> pd.DataFrame:
        table = lake.read_table(spark, config, "gold", "metric_features_1m").toPandas()
        return table[["window_at", "feature_set", "metric", "feature", "value"]].sort_values(order).reset_index(drop=True)

    def from_day(features: pd.DataFrame, day) -> pd.DataFrame:
        return features[features["window_at"].dt.date >= day]

    before = rows["window_at"].dt.date < since
    lake.append(spark.createDataFrame(rows[before], ROLLUPS), config, "gold", "metric_rollups_1m", ("test-rollups", 0))
    run_job()
    first_pass = source_features(rows[before], DETECTOR_FEATURES)  # what the first run wrote of the days before
    # the days from `since` arrive, and a late event changes a minute of the first days: gold holds one row per key, so
    # the corrected rollups replace the whole table here
    corrected = rows.copy()
    late = (corrected["window_at"] == pd.Timestamp("2026-01-06 00:00", tz="UTC")) & (corrected["metric"] == "cpu_percent")
    corrected.loc[late, "mean_value"] += 500.0  # a Tuesday's midnight: its seasonal slot recurs after `since`
    lake.replace_rows(spark.createDataFrame(corrected, ROLLUPS), config, "gold", "metric_rollups_1m", {"host": "app-1"}, [])

    nightly = run_job("--since", since.isoformat())
    assert f"from {since} on" in nightly and "after the seasonal sums saved" in nightly
    # the sums the run starts from are of gold as the first run read it: the late minute is not in them
    uncorrected = source_features(rows, DETECTOR_FEATURES)
    expected = pd.concat([first_pass, from_day(uncorrected, since)]).sort_values(order).reset_index(drop=True)
    pd.testing.assert_frame_equal(feature_table(), expected, check_dtype=False, rtol=1e-12)

    late_day = pd.Timestamp("2026-01-06").date()
    run_job("--since", late_day.isoformat())  # a run from the corrected minute's day reads it
    whole_pass = source_features(corrected, DETECTOR_FEATURES)
    assert not np.allclose(from_day(uncorrected, since)["value"], from_day(whole_pass, since)["value"])
    expected = pd.concat([first_pass[first_pass["window_at"].dt.date < late_day], from_day(whole_pass, late_day)])
    pd.testing.assert_frame_equal(feature_table(), expected.sort_values(order).reset_index(drop=True),
                                  check_dtype=False, rtol=1e-12)
