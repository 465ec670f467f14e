"""Build gold.metric_features_1m: a feature set of every source's metrics, minute by minute, from gold.metric_rollups_1m.

    perflake submit jobs/metric_features.py [--feature-set detector_features.v1] [--rollup-column mean_value]
                                            [--since YYYY-MM-DD]

One row per source (service endpoint or host), minute and feature, computed point in time by the
code the detectors and notebooks use on pandas (perflake.anomaly.features), so a model trained
on either sees the same numbers. Each run rebuilds the feature set's rows of that rollup column,
all of them or (--since) those of the days from that one on (UTC), in one Delta commit. Either
way it reads the whole of gold, as a seasonal feature reads every earlier minute of its slot;
with --since only the rows just before that day go through the other features, so a nightly
run's feature work follows the day (its read of gold and the seasonal sums still follow the
history: docs/benchmarks.md). Rows of the days before --since keep the values of
the run that wrote them: a gold minute corrected there (a late event) needs a run from its day.
Data on failure: the table keeps the rows of the last run that finished; other feature sets',
rollup columns' and earlier days' rows are never touched.
"""

import argparse
import time
from datetime import date

from perflake import lake
from perflake.anomaly.features import FEATURE_SETS, metric_features
from perflake.config import get_config
from perflake.spark import get_spark

SOURCE, TABLE = "metric_rollups_1m", "metric_features_1m"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feature-set", default="detector_features.v1", choices=sorted(FEATURE_SETS))
    parser.add_argument("--rollup-column", default="mean_value", help="the rollup the features are of (default: %(default)s)")
    parser.add_argument("--since", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="rebuild the days from this one on (UTC) only (default: every day)")
    args = parser.parse_args(argv)
    config = get_config()
    spark = get_spark(config, app_name="perflake-metric-features")
    try:
        if not lake.table_exists(spark, config, "gold", SOURCE):
            raise SystemExit(f"gold.{SOURCE} does not exist at {lake.table_path(config, 'gold', SOURCE)}: "
                             "run the pipeline first (make run)")
        started = time.monotonic()
        rollups = lake.read_table(spark, config, "gold", SOURCE)
        days = f"from {args.since} on" if args.since else "of every day"
        print(f"gold.{SOURCE}: {rollups.count()} rows; computing {args.feature_set} of {args.rollup_column} {days} ...",
              flush=True)
        features = metric_features(rollups, FEATURE_SETS[args.feature_set], args.rollup_column, args.since)
        rebuilt = {"feature_set": args.feature_set, "rollup_column": args.rollup_column}
        from_dates = {"window_date": args.since} if args.since else None
        lake.replace_rows(features, config, "gold", TABLE, rebuilt, [*rebuilt, "window_date"], from_dates)
        lake.register_tables(spark, config, "gold", [TABLE])
        count = lake.read_rows(spark, config, "gold", TABLE, rebuilt, from_dates).count()
        print(f"gold.{TABLE}: {count} rows of {args.feature_set} ({args.rollup_column}) {days} "
              f"in {time.monotonic() - started:.0f} s", flush=True)
        if not count and args.since:
            print(f"no feature from {args.since} on: gold has no minute of then or later, or none with history enough",
                  flush=True)
        elif not count:
            print("no feature is defined yet: a feature's window needs minutes of history before it "
                  "(the main job's feed spans about one minute; see docs/pipeline.md for a longer one)", flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
