"""Gold transforms against pandas references computed from the same rows."""

import random
from collections import Counter
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from perflake.pipeline import gold

START = datetime(2026, 11, 24, 14, 30)


@pytest.fixture(scope="module")
def metrics(spark):
    rng = random.Random(5)
    rows = [
        (
            rng.choice(["response_time_ms", "cpu_percent"]),
            rng.choice(["ws2-protocol-engine", "ws4-market-integration"]),
            rng.choice(["/orders", None]),
            rng.choice(["app-1", "app-2"]),
            START + timedelta(seconds=rng.uniform(0, 180)),
            round(rng.lognormvariate(3, 0.7), 3),
            "ms",
            rng.random() < 0.1,
        )
        for _ in range(3000)
    ]
    schema = ("metric STRING, service STRING, endpoint STRING, host STRING, event_at TIMESTAMP, value DOUBLE, unit STRING, "
              "is_error BOOLEAN")
    return spark.createDataFrame(rows, schema)


def test_minute_rollups_equal_a_pandas_reference(metrics):
    keys = ["metric", "service", "endpoint", "host", "window_at"]
    got = gold.metric_rollups(metrics, "minute", accuracy=10000).toPandas().set_index(keys).sort_index()
    frame = metrics.toPandas()
    frame["window_at"] = frame["event_at"].dt.floor("min")
    frame["endpoint"] = frame["endpoint"].astype(object)
    grouped = frame.groupby(keys, dropna=False)
    expected = pd.DataFrame(
        {
            "n_samples": grouped.size(),
            "sum_value": grouped["value"].sum(),
            "min_value": grouped["value"].min(),
            "max_value": grouped["value"].max(),
            "mean_value": grouped["value"].mean(),
            "n_errors": grouped["is_error"].sum(),
            # below `accuracy` values the sketch is exact: the smallest value with rank >= q*n
            **{
                f"p{round(q * 100)}_value": grouped["value"].apply(lambda v, q=q: np.quantile(v, q, method="inverted_cdf"))
                for q in gold.PERCENTILES
            },
        }
    ).sort_index()
    assert len(got) == len(expected) > 20
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False, check_index_type=False, rtol=1e-9)
    assert (got["error_rate"] == got["n_errors"] / got["n_samples"]).all()
    assert (got["samples_per_s"] == got["n_samples"] / 60).all()


def test_percentiles_keep_their_stated_rank_error_on_large_groups(spark):
    """percentile_approx promises rank error <= n / accuracy; this is the tolerance gold states."""
    values = np.random.default_rng(7).lognormal(3, 1, 50_000)
    accuracy = 100
    frame = spark.createDataFrame([(float(v),) for v in values], "value DOUBLE")
    row = frame.agg(*gold.percentiles("value", accuracy, "value")).first()
    ordered = np.sort(values)
    n = len(values)
    for q in gold.PERCENTILES:
        rank = int(np.searchsorted(ordered, row[f"p{round(q * 100)}_value"], side="right"))
        assert abs(rank - round(q * n)) <= n // accuracy, f"p{q}: rank {rank} of {n}"


def test_strategy_effectiveness_counts_wins_rejects_and_slippage(spark):
    at = "2026-11-24 15:00:00"  # 10:00 in New York: the same trading day
    fills = spark.createDataFrame(
        [("s1", at, 10.0, 2.0, 0.65), ("s1", at, -5.0, 4.0, 0.65), ("s1", at, None, 0.0, 0.65), ("s2", at, 1.0, 1.0, 0.0)],
        "strategy STRING, event_at STRING, realized_pnl_usd DOUBLE, slippage_bps DOUBLE, fee_usd DOUBLE",
    ).withColumn("event_at", F.to_timestamp("event_at"))
    orders = spark.createDataFrame(
        [("s1", at, "submitted")] * 4 + [("s1", at, "rejected")],
        "strategy STRING, event_at STRING, status STRING",
    ).withColumn("event_at", F.to_timestamp("event_at"))
    rows = {r.strategy: r for r in gold.strategy_effectiveness_daily(orders, fills, "America/New_York").collect()}
    s1 = rows["s1"]
    assert (s1.n_fills, s1.n_closing_fills, s1.n_winning_fills, s1.win_rate) == (3, 2, 1, 0.5)
    assert (s1.realized_pnl_usd, s1.mean_slippage_bps, s1.n_orders, s1.n_rejected, s1.reject_rate) == (5.0, 2.0, 4, 1, 0.25)
    assert (rows["s2"].n_orders, rows["s2"].reject_rate) == (0, None)


def test_the_trading_day_follows_new_york_time(spark):
    frame = spark.createDataFrame([("2026-11-25 03:00:00",)],
                                  "event_at STRING").withColumn("event_at", F.to_timestamp("event_at"))
    assert str(frame.select(gold.trade_date("America/New_York").alias("d")).first().d) == "2026-11-24"


def test_one_stream_carries_every_tables_keys_and_gives_them_back(metrics):
    from perflake.pipeline.streams import changed_keys, key_changes, key_schema

    tables = [t for t in gold.gold_tables(10000, "America/New_York") if t.sources == ("metrics",)]
    changes = key_changes(metrics, tables)
    assert {t.name for t in tables} == {"metric_rollups_1m", "metric_rollups_1h"}
    for table in tables:
        expected = metrics.select(*table.key_values(), "event_at")
        got = changed_keys(changes, table, key_schema(metrics, table))
        assert got.schema == expected.schema
        # null endpoints included: every key comes back as it went in, once per silver row
        assert Counter(map(tuple, got.collect())) == Counter(map(tuple, expected.collect()))
