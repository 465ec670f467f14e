"""The lake: its insert of new keys (what it skips, what a replay does, what its filter promises),
replacing a slice of rows, stream ids, and SQL by name without Spark."""

from datetime import date, datetime, timezone

import pytest
from pyspark.errors import AnalysisException
from pyspark.sql import functions as F

from perflake import lake
from tests.support import make_config


def stored(spark, config) -> list[tuple]:
    return sorted(tuple(row) for row in lake.read_table(spark, config, "silver", "events").select("event_id", "value").collect())


def test_insert_new_adds_only_unseen_keys_within_the_stored_rows_it_is_told_to_compare(spark, tmp_path):
    config = make_config("local", tmp_path)
    day = F.to_date(F.lit("2026-11-25"))
    frame = lambda rows: spark.createDataFrame(rows, "event_id STRING, value DOUBLE").withColumn("event_date", day)  # noqa: E731
    lake.ensure_table(spark, config, "silver", "events", frame([]).schema, ["event_date"])
    dates = [frame([("a", 0.0)]).first().event_date]

    lake.insert_new(frame([("a", 1.0), ("b", 2.0)]), config, "silver", "events", ["event_id"], "event_date", dates)
    # "a" is stored: the later copy is skipped, the first kept; a replay inserts nothing
    lake.insert_new(frame([("a", 9.0), ("c", 3.0)]), config, "silver", "events", ["event_id"], "event_date", dates)
    lake.insert_new(frame([("a", 1.0), ("b", 2.0)]), config, "silver", "events", ["event_id"], "event_date", dates)
    assert stored(spark, config) == [("a", 1.0), ("b", 2.0), ("c", 3.0)]

    # only stored rows meeting the filter are compared: the caller vouches for the rest
    lake.insert_new(frame([("b", 5.0)]), config, "silver", "events", ["event_id"], "event_date", dates, F.col("t.value") > 2.5)
    assert stored(spark, config) == [("a", 1.0), ("b", 2.0), ("b", 5.0), ("c", 3.0)]


def test_replace_rows_replaces_its_slice_only_and_refuses_rows_outside_it(spark, tmp_path):
    config = make_config("local", tmp_path)
    frame = lambda rows: spark.createDataFrame(rows, "part STRING, n INT")  # noqa: E731

    def table() -> list[tuple]:
        return sorted(tuple(row) for row in lake.read_table(spark, config, "gold", "slices").collect())

    lake.replace_rows(frame([("a", 1), ("a", 2)]), config, "gold", "slices", {"part": "a"}, ["part"])  # creates it
    lake.replace_rows(frame([("b", 3)]), config, "gold", "slices", {"part": "b"}, ["part"])
    lake.replace_rows(frame([("a", 4)]), config, "gold", "slices", {"part": "a"}, ["part"])
    assert table() == [("a", 4), ("b", 3)]
    assert [tuple(row) for row in lake.read_rows(spark, config, "gold", "slices", {"part": "b"}).collect()] == [("b", 3)]
    with pytest.raises(AnalysisException, match="DELTA_REPLACE_WHERE_MISMATCH"):
        lake.replace_rows(frame([("a", 5), ("b", 6)]), config, "gold", "slices", {"part": "a"}, ["part"])
    assert table() == [("a", 4), ("b", 3)]  # the refused write changed nothing


def test_replace_rows_from_a_date_on_keeps_the_slices_earlier_days_and_refuses_rows_before_it(spark, tmp_path):
    config = make_config("local", tmp_path)
    frame = lambda rows: spark.createDataFrame(rows, "part STRING, day DATE, n INT")  # noqa: E731
    days = [date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)]

    def table() -> list[tuple]:
        return sorted(tuple(row) for row in lake.read_table(spark, config, "gold", "days").collect())

    lake.replace_rows(frame([("a", day, 1) for day in days]), config, "gold", "days", {"part": "a"}, ["day"])
    lake.replace_rows(frame([("b", days[2], 1)]), config, "gold", "days", {"part": "b"}, ["day"])
    lake.replace_rows(frame([("a", days[1], 2)]), config, "gold", "days", {"part": "a"}, ["day"], {"day": days[1]})
    assert table() == [("a", days[0], 1), ("a", days[1], 2), ("b", days[2], 1)]  # a's third day is gone with its slice
    from_second = lake.read_rows(spark, config, "gold", "days", {"part": "a"}, {"day": days[1]}).collect()
    assert [tuple(row) for row in from_second] == [("a", days[1], 2)]
    with pytest.raises(AnalysisException, match="DELTA_REPLACE_WHERE_MISMATCH"):
        lake.replace_rows(frame([("a", days[0], 3)]), config, "gold", "days", {"part": "a"}, ["day"], {"day": days[1]})
    assert table() == [("a", days[0], 1), ("a", days[1], 2), ("b", days[2], 1)]


def test_a_stream_keeps_its_id_across_restarts_and_a_new_checkpoint_gets_a_new_one(spark, tmp_path):
    import shutil

    config = make_config("local", tmp_path)
    schema = spark.createDataFrame([(1,)], "n INT").schema
    lake.ensure_table(spark, config, "silver", "numbers", schema, [])

    def run() -> str:
        source = lake.read_stream(spark, config, "silver", "numbers")
        lake.foreach_batch_stream(source, config, "numbers", lambda batch, batch_id: None, available_now=True).awaitTermination()
        return lake.stream_id(spark, config, "numbers")

    first = run()
    assert run() == first  # a restart resumes the same checkpoint: its replayed batches keep their transaction ids
    shutil.rmtree(lake.checkpoint_path(config, "numbers").removeprefix("file://"))
    assert run() != first  # batch ids restart at 0 under a new id, so nothing is taken as already written


def test_sql_reader_answers_by_name_as_spark_does_and_sees_each_new_commit(spark, tmp_path):
    config = make_config("local", tmp_path)
    frame = lambda rows: spark.createDataFrame(rows, "service STRING, window_at TIMESTAMP, n_samples BIGINT")  # noqa: E731
    minute = lambda m: datetime(2026, 12, 3, 10, m, tzinfo=timezone.utc)  # noqa: E731
    lake.ensure_table(spark, config, "gold", "rollups", frame([]).schema, [])
    lake.append(frame([("ws2", minute(0), 3), ("ws2", minute(1), 4), ("ws4", minute(0), 5)]), config, "gold", "rollups", ("t", 0))
    sql = (
        "SELECT window_at, sum(n_samples) AS n FROM gold.rollups "
        "WHERE service = 'ws2' AND window_at >= TIMESTAMP '2026-12-03 10:00:00' GROUP BY window_at ORDER BY window_at"
    )
    reader = lake.SqlReader(config)
    lake.read_table(spark, config, "gold", "rollups").createOrReplaceTempView("gold_rollups")
    expected = spark.sql(sql.replace("gold.rollups", "gold_rollups")).collect()
    answer = reader.query(sql)
    # epoch seconds: Spark gives naive local datetimes, the reader UTC-aware timestamps
    by_reader = [(at.timestamp(), n) for at, n in zip(answer.window_at, answer.n)]
    assert [(row.window_at.timestamp(), row.n) for row in expected] == by_reader
    assert list(answer.n) == [3, 4]

    # a commit after the reader's first query is in its next answer
    lake.append(frame([("ws2", minute(1), 6)]), config, "gold", "rollups", ("t", 1))
    assert list(reader.query(sql).n) == [3, 10]


def test_sql_reader_renames_tables_outside_literals_and_names_a_missing_one(tmp_path):
    sql, tables = lake.SqlReader.unqualified(
        "SELECT 'gold.x' AS s, 'it''s silver.y' FROM Gold.a JOIN silver.b ON gold.a.k = silver.b.k"
    )
    assert sql == "SELECT 'gold.x' AS s, 'it''s silver.y' FROM gold__a JOIN silver__b ON gold__a.k = silver__b.k"
    assert tables == [("gold", "a"), ("silver", "b")]
    reader = lake.SqlReader(make_config("local", tmp_path))
    with pytest.raises(ValueError, match="gold.absent does not exist: no Delta table at file://"):
        reader.query("SELECT * FROM gold.absent")
    with pytest.raises(ValueError, match="names no lake table"):
        reader.query("SELECT 1")
