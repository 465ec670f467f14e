"""Event-time horizons: the ranges are exact, and gold's refresh rebuilt through them equals a full rebuild."""

import random
from datetime import date, datetime, timedelta, timezone

from pyspark.sql import functions as F

from perflake import lake
from perflake.pipeline import gold
from perflake.pipeline.horizon import MAX_RANGES, EventTimeRanges
from perflake.pipeline.streams import ensure_gold_table, refresh
from tests.support import make_config

MIDNIGHT = datetime(2026, 11, 25, tzinfo=timezone.utc)


def epoch(at: datetime) -> int:
    return int(at.timestamp())


def test_ranges_widen_each_minute_by_the_span_and_merge_overlaps():
    minutes = [epoch(MIDNIGHT) + 60 * m for m in (0, 1, 10)]
    ranges = EventTimeRanges.around(minutes, timedelta(minutes=1)).ranges
    start = epoch(MIDNIGHT)
    assert ranges == ((start - 60, start + 180), (start + 540, start + 720))


def test_a_batch_spread_over_many_hours_gets_hour_ranges_then_day_ranges():
    day = epoch(MIDNIGHT)
    two_minutes_every_other_hour = [day + 7200 * h + 60 * m for h in range(20) for m in (0, 30)]
    ranges = EventTimeRanges.around(two_minutes_every_other_hour, timedelta(0)).ranges
    assert ranges == tuple((day + 7200 * h, day + 7200 * h + 3600) for h in range(20))

    every_other_hour_for_three_days = [day + 7200 * h for h in range(36)]
    assert EventTimeRanges.around(every_other_hour_for_three_days, timedelta(0)).ranges == ((day, day + 3 * 86400),)

    # past the limit even in days: day ranges, however many
    every_other_day = [day + 86400 * 2 * d for d in range(MAX_RANGES + 1)]
    ranges = EventTimeRanges.around(every_other_day, timedelta(0)).ranges
    assert ranges == tuple((day + 86400 * 2 * d, day + 86400 * (2 * d + 1)) for d in range(MAX_RANGES + 1))


def test_dates_are_the_utc_days_the_ranges_touch_and_an_end_is_exclusive():
    before_midnight = EventTimeRanges(((epoch(MIDNIGHT) - 60, epoch(MIDNIGHT)),))
    assert before_midnight.dates() == [date(2026, 11, 24)]
    across = EventTimeRanges(((epoch(MIDNIGHT) - 60, epoch(MIDNIGHT) + 1),))
    assert across.dates() == [date(2026, 11, 24), date(2026, 11, 25)]
    assert EventTimeRanges(()).dates() == []


def test_contains_keeps_exactly_the_times_inside_a_range(spark):
    ranges = EventTimeRanges(((epoch(MIDNIGHT), epoch(MIDNIGHT) + 60), (epoch(MIDNIGHT) + 600, epoch(MIDNIGHT) + 660)))
    offsets = [-1, 0, 59, 60, 599, 600, 659, 660]
    frame = spark.createDataFrame([(MIDNIGHT + timedelta(seconds=s), s) for s in offsets], "event_at TIMESTAMP, offset INT")
    kept = sorted(row.offset for row in frame.filter(ranges.contains(F.col("event_at"))).collect())
    assert kept == [0, 59, 600, 659]
    assert frame.filter(EventTimeRanges(()).contains(F.col("event_at"))).count() == 0


def write_silver(spark, config, table: str, rows: list[tuple], schema: str) -> None:
    """One file per hour of event time, as a stream writes them, so files have narrow statistics."""
    frame = spark.createDataFrame(rows, schema).withColumn("event_date", F.to_date("event_at"))
    path = lake.table_path(config, "silver", table)
    for (hour,) in frame.select(F.date_trunc("hour", "event_at")).distinct().collect():
        part = frame.filter(F.date_trunc("hour", "event_at") == F.lit(hour)).coalesce(1)
        part.write.format("delta").mode("append").partitionBy("event_date").save(path)


def without_update_time(rows) -> set:
    return {tuple(row)[:-1] for row in rows}


def refreshed_equals_full_build(spark, config, table: gold.GoldTable, changed) -> None:
    """Refresh the keys of ``changed`` silver rows; gold must equal a build over all of silver for those keys."""
    ensure_gold_table(spark, config, table)
    refresh(changed.select(*table.key_values(), "event_at"), spark, config, table)
    keys = {tuple(row) for row in changed.select(*table.key_values()).distinct().collect()}
    full = table.build(*[lake.read_table(spark, config, "silver", source) for source in table.sources]).collect()
    expected = without_update_time(row for row in full if tuple(row[k] for k in table.keys) in keys)
    got = without_update_time(lake.read_table(spark, config, "gold", table.name).select(*full[0].__fields__).collect())
    assert got == expected and len(expected) == len(keys)


def test_refresh_through_the_horizon_rebuilds_windows_that_straddle_midnight_and_trading_days(spark, tmp_path):
    config = make_config("local", tmp_path)
    rng = random.Random(3)
    start = MIDNIGHT - timedelta(hours=2)
    metric_rows = [
        ("cpu_percent", "ws3-account-management", None, f"app-{rng.randint(1, 2)}",
         start + timedelta(seconds=s), rng.uniform(0, 100), "percent", rng.random() < 0.05)
        for s in range(0, 4 * 3600, 7)
    ]
    write_silver(spark, config, "metrics", metric_rows,
                 "metric STRING, service STRING, endpoint STRING, host STRING, event_at TIMESTAMP, value DOUBLE, unit STRING, "
                 "is_error BOOLEAN")
    metrics = lake.read_table(spark, config, "silver", "metrics")
    # changed: rows of 23:59 and 00:00; their hours need rows from 23:00 to 00:59, two dates
    changed = metrics.filter(F.col("event_at").between(MIDNIGHT - timedelta(minutes=1), MIDNIGHT + timedelta(seconds=59)))
    for table in gold.gold_tables(10000, "America/New_York"):
        if table.sources == ("metrics",):
            refreshed_equals_full_build(spark, config, table, changed)

    # a New York trading day runs 05:00 to 05:00 UTC in winter:
    # a change at 04:30 UTC needs the day's first rows, 23 h 20 min before
    decision_rows = [
        ("rebalance", "profit" if i % 3 else "loss", i % 7 == 0, True, float(i % 50), 20.0 + i % 13, None,
         MIDNIGHT - timedelta(hours=24) + timedelta(minutes=20 * i))
        for i in range(2 * 72)
    ]
    write_silver(spark, config, "protocol_decisions", decision_rows,
                 "decision STRING, outcome STRING, is_human_override BOOLEAN, is_compliant BOOLEAN, pnl_usd DOUBLE, "
                 "decision_latency_ms DOUBLE, approval_latency_ms DOUBLE, event_at TIMESTAMP")
    decisions = lake.read_table(spark, config, "silver", "protocol_decisions")
    changed = decisions.filter(F.col("event_at") == F.lit(MIDNIGHT + timedelta(hours=4, minutes=20)))
    (table,) = [t for t in gold.gold_tables(10000, "America/New_York") if t.name == "protocol_effectiveness_daily"]
    refreshed_equals_full_build(spark, config, table, changed)
