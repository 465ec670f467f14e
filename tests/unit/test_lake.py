"""The lake's insert of new keys: what it skips, what a replay does, and what its filter promises."""

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
