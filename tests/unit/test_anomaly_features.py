"""The feature framework: point in time (no look-ahead), the same numbers on pandas and Spark."""

import statistics

import numpy as np
import pandas as pd
import pytest

from perflake.anomaly.features import (DETECTOR_FEATURES, Feature, FeatureSet, compute_features, grouped_median_sigma,
                                       latest_states, metric_feature_states, metric_features, robust_sigma,
                                       rows_after_states, saved_sums, seasonal_sums, seasonal_z, source_features,
                                       source_seasonal_states, spark_features)
from tests import synthetic as syn

EVERY_KIND = FeatureSet(
    "every_kind", 1,
    tuple(Feature(kind, 12) for kind in ("lag", "diff", "pct_change", "rolling_mean", "rolling_std", "rolling_min", "rolling_max",
                                         "ewm_mean", "ewm_std", "zscore", "robust_z", "diff_robust_z", "volatility_ratio"))
    + (Feature("value"), Feature("seasonal_z")),
    calendar=True, cross_series=True, seasonal_slot="hour_of_day",
)


def host(rows: int = 400) -> pd.DataFrame:
    frame = syn.clean(rows=rows)
    return frame.assign(memory=frame["value"] * 2 + np.random.default_rng(1).normal(0, 1, rows))


@pytest.mark.parametrize("cut", [30, 150, 399])
def test_a_feature_at_a_row_reads_no_later_row(cut):
    frame = host()
    whole = compute_features(frame, EVERY_KIND)
    truncated = compute_features(frame.iloc[: cut + 1], EVERY_KIND)
    pd.testing.assert_series_equal(whole.iloc[cut], truncated.iloc[cut], check_names=False)


def test_rolling_statistics_describe_the_rows_before():
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-05", periods=6, freq="min", tz="UTC"), "v": [1.0, 2, 3, 4, 5, 100]})
    features = compute_features(frame, FeatureSet("t", 1, (Feature("rolling_mean", 4), Feature("lag", 1), Feature("diff", 2))))
    assert features["v__rolling_mean_4"].iloc[5] == 3.5  # 2, 3, 4, 5: not the 100 itself
    assert features["v__lag_1"].iloc[5] == 5 and features["v__diff_2"].iloc[5] == 96


def test_the_seasonal_z_reads_the_earlier_measured_rows_of_its_slot_and_keeps_its_precision_on_large_values():
    offset = 1e9  # a byte counter: its squares are beyond a double's integers
    values = pd.Series([1.0, 10, 2, 20, np.nan, 30, 4, 40, 100, 50]) + offset
    z = seasonal_z(values, pd.Series([0, 1] * 5))
    assert z.iloc[:7].isna().all()  # fewer than three earlier measured rows in the slot, or no value
    assert z.iloc[7] == pytest.approx((40 - 20) / 10, rel=1e-9)  # slot 1 before it: 10, 20, 30
    assert z.iloc[8] == pytest.approx((100 - 7 / 3) / statistics.stdev([1, 2, 4]), rel=1e-9)  # the missing value left out
    assert z.iloc[9] == pytest.approx((50 - 25) / statistics.stdev([10, 20, 30, 40]), rel=1e-9)


@pytest.mark.parametrize("split", [1, 3, 5, 8])
def test_the_seasonal_z_of_later_rows_reads_the_earlier_rows_through_their_slot_sums_as_one_pass_does(split):
    offset = 1e9
    values = pd.Series([1.0, 10, 2, 20, np.nan, 30, 4, 40, 100, 50, 7, np.nan]) + offset
    slots = pd.Series([0, 1] * 5 + [2, 0])  # slot 2 first seen after the split; the last row's value missing
    earlier = seasonal_sums(values.iloc[:split], slots.iloc[:split])
    later = seasonal_z(values.iloc[split:], slots.iloc[split:], earlier)
    np.testing.assert_allclose(later.to_numpy(), seasonal_z(values, slots).iloc[split:].to_numpy(), rtol=1e-9)
    in_two = seasonal_sums(values.iloc[split:], slots.iloc[split:], earlier)
    pd.testing.assert_frame_equal(in_two, seasonal_sums(values, slots), rtol=1e-9)


def test_a_slots_seasonal_z_reads_its_own_rows_alone_whatever_the_other_slots_hold():
    rng = np.random.default_rng(3)
    quiet = pd.Series(5 + rng.normal(0, 1e-6, 40))  # a spread of a millionth: other slots' sums would drown it
    loud = pd.Series(rng.normal(0, 1e7, 40))
    values = pd.Series(np.ravel(np.column_stack([loud, quiet])))  # the two slots interleaved
    slots = pd.Series(["a", "b"] * 40)
    alone = seasonal_z(quiet, pd.Series(["b"] * 40))
    np.testing.assert_allclose(seasonal_z(values, slots)[slots == "b"].to_numpy(), alone.to_numpy(), rtol=1e-9)


def test_a_row_without_a_seasonal_slot_has_no_seasonal_z_and_adds_to_no_slots_sums():
    values = pd.Series([1.0, 5, 2, 6, 9, 3, 8, 7, 4, 50])
    slots = pd.Series(["a", None, "a", None, None, "a", None, None, "a", "a"])  # e.g. rows without a time
    with_slot = slots.notna()
    z = seasonal_z(values, slots)
    assert z[~with_slot].isna().all()
    pd.testing.assert_series_equal(z[with_slot], seasonal_z(values[with_slot], slots[with_slot]))
    assert z.iloc[9] == pytest.approx((50 - 2.5) / statistics.stdev([1, 2, 3, 4]), rel=1e-9)
    pd.testing.assert_frame_equal(seasonal_sums(values, slots), seasonal_sums(values[with_slot], slots[with_slot]))


def test_each_groups_median_and_spread_are_those_of_its_values_alone():
    values = np.array([1.0, 2, 4, 9, 5, 5, 5, 6, 7, 7.5, 3])
    groups = np.array(["a", "a", "a", "a", "b", "b", "b", "b", "c", "c", "d"])  # b: its MAD is 0; d: one value
    medians, sigmas = grouped_median_sigma(values, groups)
    for group in "abcd":
        alone = pd.Series(values[groups == group])
        assert medians[group] == alone.median() and sigmas[group] == pytest.approx(robust_sigma(alone), rel=1e-12)
    assert sigmas["b"] > 0 and sigmas["d"] == 0


def test_calendar_features_know_the_trading_session():
    # Monday's open, Thanksgiving, a Saturday
    stamps = pd.Series(pd.to_datetime(["2026-11-23 14:35", "2026-11-26 15:00", "2026-11-28 15:00"], utc=True))
    frame = compute_features(pd.DataFrame({"timestamp": stamps, "v": [1.0, 2, 3]}), EVERY_KIND)
    assert frame["is_open"].tolist() == [True, False, False]
    assert frame["is_holiday"].tolist() == [False, True, False]
    assert frame["is_weekend"].tolist() == [False, False, True]


def test_an_unknown_feature_or_a_frame_without_metrics_is_an_error():
    with pytest.raises(ValueError, match="unknown feature kind 'wobble'"):
        compute_features(syn.clean(rows=10), FeatureSet("x", 1, (Feature("wobble", 3),)))
    with pytest.raises(ValueError, match="at least one metric column"):
        compute_features(syn.clean(rows=10)[["timestamp"]], DETECTOR_FEATURES)


def test_a_sources_long_rows_get_the_features_of_its_metrics_side_by_side():
    frame = host(200)
    frame.loc[50:59, "memory"] = np.nan  # a gap in one metric: its minutes have no memory row
    got = source_features(syn.gold_rows(frame).sample(frac=1.0, random_state=0), EVERY_KIND)  # rows in any order
    expected = compute_features(frame, EVERY_KIND).astype(float).set_axis(frame["timestamp"])
    assert set(got["feature_set"]) == {"every_kind.v1"}
    assert got.loc[got["feature"] == "robust_z_12", "metric"].value_counts().to_dict() == {
        "value": expected["value__robust_z_12"].notna().sum(), "memory": expected["memory__robust_z_12"].notna().sum()}
    assert got.loc[got["feature"].isin(["hour_sin", "cross__n_over_3"]), "metric"].isna().all()  # the source's own
    column = np.where(got["metric"].isna(), got["feature"], got["metric"] + "__" + got["feature"])
    wide = got.assign(column=column).pivot(index="window_at", columns="column", values="value")
    pd.testing.assert_frame_equal(wide.reindex(index=expected.index, columns=expected.columns), expected,
                                  check_names=False, rtol=1e-12)


ONE_KIND_EACH = [FeatureSet(feature.kind, 1, (feature,)) for feature in EVERY_KIND.features]


@pytest.mark.parametrize("feature_set", [EVERY_KIND, DETECTOR_FEATURES, *ONE_KIND_EACH], ids=lambda feature_set: feature_set.name)
def test_a_sources_features_from_a_day_on_are_those_a_pass_over_its_whole_history_gives(feature_set):
    frame = host(1000)  # 30-minute rows from 2026-01-05 to 01-25
    frame.loc[690:700, "value"] = np.nan  # a gap across 2026-01-19's end
    frame.loc[900:, "memory"] = np.nan  # a metric that stops
    rows = syn.gold_rows(frame)
    order = ["window_at", "feature", "metric"]
    whole = source_features(rows, feature_set).sort_values(order).reset_index(drop=True)
    for since in pd.date_range("2026-01-05", "2026-01-26", freq="D").date:  # each day's first rows read days before it
        expected = whole[whole["window_at"].dt.date >= since].reset_index(drop=True)
        got = source_features(rows, feature_set, since=since).sort_values(order).reset_index(drop=True)
        assert len(got) == len(expected) and got.empty == (since.day == 26), since
        pd.testing.assert_frame_equal(got, expected, rtol=1e-12, obj=f"features from {since} on")


BUT_EWM = FeatureSet("every_kind_but_ewm", 1, tuple(f for f in EVERY_KIND.features if not f.kind.startswith("ewm")),
                     calendar=True, cross_series=True, seasonal_slot="phase_hour")  # a slot of text


@pytest.mark.parametrize("feature_set", [BUT_EWM, DETECTOR_FEATURES], ids=lambda feature_set: feature_set.name)
def test_night_after_night_features_from_the_last_runs_seasonal_sums_are_a_whole_pass(feature_set):
    frame = host(1000)  # 30-minute rows from 2026-01-05 to 01-25
    frame.loc[690:700, "value"] = np.nan  # a gap across 2026-01-19's end
    frame.loc[400:900, "memory"] = np.nan  # a metric silent for ten days: its sums wait for it
    rows = syn.gold_rows(frame)
    order = ["window_at", "feature", "metric"]
    whole = source_features(rows, feature_set).sort_values(order).reset_index(drop=True)
    first_run = rows[rows["window_at"] < pd.Timestamp("2026-01-08", tz="UTC")]  # a first run, over every day
    states = source_seasonal_states(first_run, feature_set)
    no_sums = feature_set.lookback > 48 * 3  # no more rows than the lookback: sums of none, the source's rows read whole
    assert states["metric"].isna().all() == no_sums and (states["lookback_from"] == rows["window_at"].min()).all() == no_sums
    for night in pd.date_range("2026-01-08", "2026-01-25", freq="D", tz="UTC"):
        day = night.date()
        saved = states[states["as_of_date"] == day]  # the last run saved sums as of each day to the day after its last
        start = saved["lookback_from"].iloc[0]
        read = rows[(rows["window_at"] >= start) & (rows["window_at"] < night + pd.Timedelta(days=1))]
        got = source_features(read, feature_set, since=day, earlier=saved_sums(saved, feature_set))
        expected = whole[whole["window_at"].dt.date == day].reset_index(drop=True)
        pd.testing.assert_frame_equal(got.sort_values(order).reset_index(drop=True), expected, rtol=1e-12, obj=str(day))
        states = source_seasonal_states(read, feature_set, since=day, earlier=saved_sums(saved, feature_set))
        assert set(states["as_of_date"]) == {day, day + pd.Timedelta(days=1)}
    assert (states["lookback_from"] > night - pd.Timedelta(days=7)).all()  # a run reads days, not weeks


def test_a_feature_set_with_an_ewm_has_no_seasonal_state_to_start_from():
    rows = syn.gold_rows(host(400))
    with pytest.raises(ValueError, match="every_kind.v1 reads every earlier row"):
        source_seasonal_states(rows, EVERY_KIND)
    with pytest.raises(ValueError, match="every_kind.v1 reads every earlier row"):
        source_features(rows, EVERY_KIND, earlier=saved_sums(source_seasonal_states(rows, BUT_EWM), BUT_EWM))


def test_a_feature_sets_lookback_is_its_longest_features_every_row_with_an_ewm_and_an_unknown_kind_is_an_error():
    assert FeatureSet("t", 1, (Feature("lag", 5), Feature("robust_z", 20), Feature("seasonal_z"))).lookback == 39
    assert FeatureSet("t", 1, (Feature("lag", 5),), cross_series=True).lookback == 119  # the cross-series robust z
    assert FeatureSet("t", 1, (Feature("lag", 5), Feature("ewm_std", 5))).lookback is None
    with pytest.raises(ValueError, match="unknown feature kind 'median'"):
        FeatureSet("t", 1, (Feature("median", 5),)).lookback


def test_two_values_for_one_minute_and_metric_are_refused_by_name():
    rows = syn.gold_rows(host(20))
    with pytest.raises(ValueError, match="more than one mean_value for metric 'memory' at 2026"):
        source_features(pd.concat([rows, rows[rows["metric"] == "memory"].iloc[[3]]]), EVERY_KIND)


def test_spark_computes_the_same_features_per_source(spark):
    a, b = host(200), host(150).assign(value=lambda f: f["value"] + 50)[["timestamp", "value"]]
    rows = pd.concat([syn.gold_rows(a, host="a"), syn.gold_rows(b, host="b")]).sample(frac=1.0, random_state=0)
    result = spark_features(spark.createDataFrame(rows), EVERY_KIND, ["host"]).toPandas()
    for name, frame in (("a", a), ("b", b)):
        expected = source_features(syn.gold_rows(frame), EVERY_KIND).assign(host=name)
        got = result[result["host"] == name]
        order = ["window_at", "feature", "metric"]
        pd.testing.assert_frame_equal(got[expected.columns].sort_values(order, na_position="first").reset_index(drop=True),
                                      expected.sort_values(order, na_position="first").reset_index(drop=True),
                                      check_dtype=False, rtol=1e-12)


@pytest.mark.parametrize("new_since_saved", [False, True], ids=["every-source-saved", "a-source-new-since"])
def test_spark_starts_each_source_from_its_latest_sums_before_the_day_and_reads_only_the_rows_after_them(
        spark, new_since_saved):
    since = pd.Timestamp("2026-01-12").date()
    sources = {"a": host(600), "b": host(500).assign(value=lambda f: f["value"] + 50),
               "new": host(400).assign(value=lambda f: f["value"] - 20),  # from 01-05 to 01-13
               "gone": host(100)}  # silent from 01-07 on, its sums of no row (fewer rows than the lookback)
    rows = pd.concat([syn.gold_rows(frame, service="host", endpoint=None, host=name) for name, frame in sources.items()])
    rollups = spark.createDataFrame(rows.assign(window_date=rows["window_at"].dt.date),
                                    "window_at TIMESTAMP, metric STRING, mean_value DOUBLE, service STRING, endpoint STRING, "
                                    "host STRING, window_date DATE")
    saved = metric_feature_states(rollups, BUT_EWM)  # sums as of every day, some after `since` too
    # a first run --since the day, with no sums saved: a source silent since before it has no day to save
    first_since = metric_feature_states(rollups, BUT_EWM, since=since).toPandas()
    assert set(first_since["host"]) == {"a", "b", "new"} and set(first_since["as_of_date"]) >= {since}
    states = latest_states(saved.where("host != 'new'") if new_since_saved else saved, since)
    assert dict(states.select("host", "as_of_date").distinct().collect()) == {
        "a": since, "b": since, "gone": pd.Timestamp("2026-01-08").date(), **({} if new_since_saved else {"new": since})}
    read = rows_after_states(rollups, states, since)
    got = metric_features(read, BUT_EWM, since=since, states=states).toPandas()
    order = ["host", "window_at", "feature", "metric"]
    expected = pd.concat([source_features(syn.gold_rows(frame), BUT_EWM, since=since).assign(host=name)
                          for name, frame in sources.items() if name != "gone"])
    pd.testing.assert_frame_equal(got[expected.columns].sort_values(order, na_position="first").reset_index(drop=True),
                                  expected.sort_values(order, na_position="first").reset_index(drop=True),
                                  check_dtype=False, rtol=1e-12)
    first_read = read.toPandas().groupby("host")["window_at"].min()
    lookback_from = pd.Timestamp(since) - pd.Timedelta(minutes=30 * BUT_EWM.lookback)
    assert first_read.to_dict() == {"a": lookback_from, "b": lookback_from,  # a source without sums is read whole
                                    "new": pd.Timestamp("2026-01-05") if new_since_saved else lookback_from}


def test_the_feature_table_says_which_rollup_its_features_are_of(spark):
    rows = syn.gold_rows(host(30), service="host", endpoint=None, host="a").assign(p95_value=lambda f: f["mean_value"] * 2)
    rollups = spark.createDataFrame(rows, "window_at TIMESTAMP, metric STRING, mean_value DOUBLE, service STRING, "
                                          "endpoint STRING, host STRING, p95_value DOUBLE")
    features = metric_features(rollups, EVERY_KIND, "p95_value").toPandas()
    assert set(features["rollup_column"]) == {"p95_value"} and set(features["service"]) == {"host"}
    assert (features["window_date"] == features["window_at"].dt.date).all()
    lag = features[(features["metric"] == "value") & (features["feature"] == "lag_12")].sort_values("window_at")
    assert lag["value"].iloc[0] == pytest.approx(rows[rows["metric"] == "value"]["p95_value"].iloc[0])
    with pytest.raises(ValueError, match="no column 'p99'; they have window_at, metric"):
        metric_features(rollups, EVERY_KIND, "p99")
