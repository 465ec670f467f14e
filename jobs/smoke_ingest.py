"""Ingest everything on the smoke topic into bronze.smoke_events (Delta), then stop.

Run it with the profile's settings (PERFLAKE_PROFILE picks local, hdfs or cluster):

    perflake submit jobs/smoke_ingest.py

which runs ``spark-submit --conf spark.master=... --conf spark.jars=... jobs/smoke_ingest.py``
(``perflake submit --print jobs/smoke_ingest.py`` shows the exact command).
Data on failure: the stream's checkpoint records only committed batches, so a rerun
re-reads from the last committed offset; nothing in Kafka is lost and nothing is written twice.
"""

from perflake import lake, smoke
from perflake.config import get_config
from perflake.spark import get_spark


def main() -> None:
    config = get_config()
    spark = get_spark(config, app_name="perflake-smoke-ingest")
    try:
        smoke.ingest_available(spark, config)
        rows = lake.read_table(spark, config, smoke.LAYER, smoke.TABLE).count()
        print(f"{smoke.LAYER}.{smoke.TABLE}: {rows} rows at {lake.table_path(config, smoke.LAYER, smoke.TABLE)}")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
