"""Build gold.metric_features_1m: a feature set of every source's metrics, minute by minute, from gold.metric_rollups_1m.

    perflake submit jobs/metric_features.py [--feature-set detector_features.v1] [--rollup-column mean_value]
                                            [--since YYYY-MM-DD]

One row per source (service endpoint or host), minute and feature, computed point in time by the
code the detectors and notebooks use on pandas (perflake.anomaly.features), so a model trained
on either sees the same numbers. Each run rebuilds the feature set's rows of that rollup column,
all of them or (--since) those of the days from that one on (UTC), in one Delta commit.

A seasonal feature reads every earlier minute of its slot: each run also saves, in
gold.metric_feature_states, each source's seasonal sums as of each day it covered. A run --since a
day starts from the sums as of that day (or the latest before it) and reads only the rows after
them: the few hours a source's other features look back, and the days from then on; gold's days
before those are not scanned. So a nightly run's cost follows the day, not the history
(docs/benchmarks.md). A source new since the sums were saved (then every day of gold is scanned),
and any run of a feature set with an EWM statistic, reads every row.

What --since does not see: a gold minute corrected (a late event) before the sums it starts from.
The days before --since keep their values, and the seasonal sums of the days after do not hold
the correction. A run --since the corrected minute's day puts both right.
Data on failure: each table keeps the rows of the last run that wrote it, and a run replaces its
rows of each in one commit, the features first; other feature sets', rollup columns' and earlier
days' rows are never touched. A run that stops between the two commits leaves sums of the run
before, which hold the gold rows as that run read them: the next run is as right as after it.
"""

import argparse
import time
from datetime import date

from perflake import lake
from perflake.anomaly.features import (FEATURE_SETS, latest_states, metric_feature_states, metric_features,
                                       rows_after_states)
from perflake.config import get_config
from perflake.spark import get_spark

SOURCE, TABLE, STATES = "metric_rollups_1m", "metric_features_1m", "metric_feature_states"


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
        feature_set = FEATURE_SETS[args.feature_set]
        rebuilt = {"feature_set": args.feature_set, "rollup_column": args.rollup_column}
        from_dates = {"window_date": args.since} if args.since else None
        rollups, states = lake.read_table(spark, config, "gold", SOURCE), None
        days = f"from {args.since} on" if args.since else "of every day"
        reading = "every row of gold"
        if args.since and feature_set.lookback is not None and lake.table_exists(spark, config, "gold", STATES):
            states = latest_states(lake.read_rows(spark, config, "gold", STATES, rebuilt), args.since)
            rollups = rows_after_states(rollups, states, args.since)
            reading = f"gold's rows after the seasonal sums saved as of {args.since} or before"
        print(f"computing {args.feature_set} of {args.rollup_column} {days}, reading {reading} ...", flush=True)
        features = metric_features(rollups, feature_set, args.rollup_column, args.since, states)
        lake.replace_rows(features, config, "gold", TABLE, rebuilt, [*rebuilt, "window_date"], from_dates)
        written = [TABLE]
        if feature_set.lookback is not None:
            sums = metric_feature_states(rollups, feature_set, args.rollup_column, args.since, states)
            as_of = {"as_of_date": args.since} if args.since else None
            lake.replace_rows(sums, config, "gold", STATES, rebuilt, [*rebuilt, "as_of_date"], as_of)
            written.append(STATES)
        lake.register_tables(spark, config, "gold", written)
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
