"""Load historical event files (JSON lines, CSV, Parquet) into bronze.events, each file once.

    perflake submit jobs/backfill_events.py --format json|csv|parquet FILE [FILE ...]

The silver stream then parses them like Kafka messages (or run
``perflake submit jobs/silver_events.py --available-now``). Column layout per format:
perflake/pipeline/backfill.py. Data on failure: a file is one Delta commit, so it is loaded
whole or not at all; loading it again after a failure or a success writes it once.
"""

import argparse
from pathlib import Path

from perflake.config import get_config
from perflake.pipeline.backfill import FORMATS, load_file
from perflake.pipeline.streams import ensure_bronze_table
from perflake.spark import get_spark


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    config = get_config()
    spark = get_spark(config, app_name="perflake-backfill")
    try:
        ensure_bronze_table(spark, config)
        for path in args.files:
            print(f"{path}: loaded (transaction backfill:{load_file(spark, config, path, args.format)})")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
