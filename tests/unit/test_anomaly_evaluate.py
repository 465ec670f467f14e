"""Event metrics, the alerting rule, threshold protocols, and pattern recognition."""

import gzip
import json
import re

import numpy as np
import pandas as pd
import pytest

from perflake.anomaly import evaluate as ev
from perflake.anomaly.detectors import make_detector
from perflake.anomaly.patterns import dominant_period, motifs, regimes
from tests import synthetic as syn


def test_segments_number_each_run_of_labels():
    assert ev.segments_of(np.array([0, 1, 1, 0, 0, 1, 0, 1])).tolist() == [-1, 0, 0, -1, -1, 1, -1, 2]


def test_event_recall_and_alert_precision_count_events_and_alerts_not_points():
    segment = np.array([-2, -2, -1, 0, 0, 0, -1, -1, 1, 1, -1])
    alerts = np.array([1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0], dtype=bool)  # the first is in the unscored part
    metrics = ev.event_metrics(segment, alerts)
    assert (metrics.events, metrics.detected, metrics.alerts, metrics.true_alerts) == (2, 1, 3, 2)
    assert (metrics.recall, metrics.precision) == (0.5, pytest.approx(2 / 3))
    assert metrics.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert metrics.incident_precision == 0.5  # 1 anomaly found, 1 false alert
    repeated = ev.event_metrics(segment, np.array([0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0], dtype=bool))
    assert (repeated.precision, repeated.incident_precision) == (0.75, 0.5)  # three alerts in one anomaly count once
    assert ev.event_metrics(segment, np.zeros(11, dtype=bool)).f1 == 0.0  # the null detector


def test_a_level_held_outside_the_labels_counts_every_row_though_the_refractory_rule_keeps_one_alert():
    from perflake.anomaly.commands import format_row, summary_json

    segment = np.array([-2, -1, -1, -1, -1, 0, -1])  # a probation row, five unlabelled rows, one anomaly row
    held = np.array([4.5, 5.0, 5.0, 5.0, 0.0, 5.0, 0.0])
    series = [ev.Series("s", pd.DataFrame(), pd.DataFrame(), segment, "c")]
    scored = {"s": ev.Scored("s", ev.alert_levels(held, 400), 0.0, held)}
    evaluation = ev.evaluate("smd", series, scored, "median_mad", "fixed")
    assert (evaluation.events.alerts, evaluation.events.normal_rows, evaluation.events.normal_rows_at_level) == (1, 5, 3)
    assert json.loads(summary_json([evaluation]))[0]["normal_rows_at_level_per_10k"] == 6_000
    assert "at level on 6000.0 per 10k unlabelled rows" in format_row(evaluation)
    without_rule = ev.event_metrics(segment, held >= ev.FIXED_LEVEL)  # the alerts are the rows at level
    assert without_rule.normal_rows_at_level == without_rule.alerts - 1 == 3


def test_an_alert_silences_its_series_until_a_higher_level_comes():
    levels = np.array([0, 5, 5, 4, 6, 0, 0, 0, 5])
    assert ev.alert_levels(levels, 3).tolist() == [0, 5, 0, 0, 6, 0, 0, 0, 5]
    assert ev.alert_levels(levels, 0).tolist() == levels.tolist()


def test_cross_fit_tunes_each_fold_on_the_other_only():
    series = {f"s{i}": ev.Series(f"s{i}", pd.DataFrame(), pd.DataFrame(), np.array([-1, 0, 0, -1]), "c") for i in range(4)}
    # fold 0 (s0, s2): anomalies at level 3, noise at 2; fold 1 (s1, s3): anomalies at 7, noise at 5
    levels = {"s0": (3.0, 2.0), "s1": (7.0, 5.0), "s2": (3.0, 2.0), "s3": (7.0, 5.0)}
    scored = {n: ev.Scored(n, np.array([1.0, anomaly, 0.0, noise]), 0.0) for n, (anomaly, noise) in levels.items()}
    thresholds = ev.choose_thresholds("smd", series, scored, "cross_fit")
    assert thresholds["s0"] == thresholds["s2"] and thresholds["s1"] == thresholds["s3"]
    assert 5.0 < thresholds["s0"] <= 7.0  # tuned on fold 1: fold 0's own labels (best in (2, 3]) were not used
    assert 2.0 < thresholds["s1"] <= 3.0


def test_a_given_level_alerts_every_series_at_it_and_a_level_that_is_not_a_positive_number_is_refused():
    segment = np.array([-1, 0, 0, -1, -1, -1])
    series = [ev.Series(f"s{i}", pd.DataFrame(), pd.DataFrame(), segment, "c") for i in range(2)]
    scored = {s.name: ev.Scored(s.name, np.array([0.0, 4.5, 0.0, 3.2, 0.0, 5.5]), 0.0) for s in series}
    found = {protocol: ev.evaluate("smd", series, scored, "median_mad", protocol).events
             for protocol in ("fixed", "level:4", "level:3", "level:5")}
    assert found["level:4"] == found["fixed"]
    assert [(found[p].detected, found[p].alerts) for p in ("level:3", "level:4", "level:5")] == [(2, 6), (2, 4), (0, 2)]
    for bad in ("level:", "level:high", "level:0", "level:-1", "level:inf"):
        with pytest.raises(ValueError, match=f"threshold protocol '{bad}': a given level is a positive number, e.g. level:5"):
            ev.choose_thresholds("smd", {}, {}, bad)


def test_a_walk_forward_result_names_its_retraining_schedule_and_a_fitted_once_result_does_not():
    from perflake.anomaly.commands import format_row, summary_json

    series = [ev.Series("s", pd.DataFrame(), pd.DataFrame(), np.array([-1, 0, -1]), "c")]
    scored = {"s": ev.Scored("s", np.array([0.0, 5.0, 0.0]), 1.0)}
    retrained = ev.evaluate("smd", series, scored, "median_mad", "fixed", refit_every="1D")
    fitted_once = ev.evaluate("smd", series, scored, "median_mad", "fixed")
    rows = json.loads(summary_json([retrained, fitted_once]))
    assert rows[0]["refit_every"] == "1D" and "refit_every" not in rows[1]
    assert "fixed, refit 1D" in format_row(retrained) and "refit" not in format_row(fitted_once)
    assert rows[0]["event_recall"] == rows[1]["event_recall"] == 1.0


def test_an_unknown_protocol_or_data_set_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"unknown threshold protocols \['best'\]; known: fixed, cross_fit, nab or level:X"):
        ev.choose_thresholds("smd", {}, {}, "best")
    with pytest.raises(ValueError, match="the nab protocol applies to the NAB data set only, not to smd"):
        ev.choose_thresholds("smd", {}, {}, "nab")
    with pytest.raises(FileNotFoundError, match=r"data set 'smd' not found at .*smd \(--data-dir, or \[ml\] reference_data_dir"):
        ev.load_dataset("smd", tmp_path / "smd")


def _smd_machine(folder, labels: str, metrics: int = 2) -> None:
    for part, rows in (("train", 5), ("test", len(labels.split()))):
        (folder / part).mkdir(parents=True)
        with gzip.open(folder / part / "machine-9-9.txt.gz", "wt") as handle:
            handle.write("\n".join(",".join(["0.1"] * metrics) for _ in range(rows)))
    (folder / "test_label").mkdir()
    (folder / "test_label" / "machine-9-9.txt").write_text(labels)


def test_smd_test_rows_follow_the_train_rows_in_time(tmp_path):
    _smd_machine(tmp_path, "0\n0\n1\n0\n")
    [series] = ev.smd_series(tmp_path)
    assert series.test["timestamp"].iloc[0] == series.fit["timestamp"].iloc[-1] + pd.Timedelta(minutes=1)
    assert series.segment.tolist() == [-1, -1, 0, -1]
    assert series.culprits == {}  # no interpretation labels: nothing to say who was at fault


def test_smd_files_as_omnianomaly_publishes_them_uncompressed_read_as_the_gzipped_ones(tmp_path):
    _smd_machine(tmp_path / "gzipped", "0\n0\n1\n0\n")
    plain = tmp_path / "plain"
    for part in ("train", "test", "test_label"):
        (plain / part).mkdir(parents=True)
    for part in ("train", "test"):
        with gzip.open(tmp_path / "gzipped" / part / "machine-9-9.txt.gz", "rt") as handle:
            (plain / part / "machine-9-9.txt").write_text(handle.read())
    (plain / "test_label" / "machine-9-9.txt").write_text("0\n0\n1\n0\n")
    [gzipped], [uncompressed] = ev.smd_series(tmp_path / "gzipped"), ev.smd_series(plain)
    pd.testing.assert_frame_equal(uncompressed.fit, gzipped.fit)
    pd.testing.assert_frame_equal(uncompressed.test, gzipped.test)
    (plain / "train" / "machine-9-9.txt").write_text("0.1\n" * 5)  # one metric where the test part has two
    with pytest.raises(ValueError, match="machine-9-9: 1 metrics in train/, 2 in test/"):
        ev.smd_series(plain)


def test_a_true_alert_is_explained_when_its_contributor_is_a_labelled_culprit(tmp_path):
    _smd_machine(tmp_path, "0 1 1 1 0 1 1 0", metrics=4)
    (tmp_path / "interpretation_label").mkdir()
    (tmp_path / "interpretation_label" / "machine-9-9.txt").write_text("1-3:2,3\n5-7:4\n")  # dimensions count from 1
    [series] = ev.smd_series(tmp_path)
    assert series.culprits == {0: {"m01", "m02"}, 1: {"m03"}}
    alerts = np.array([1, 1, 1, 0, 0, 1, 0, 0], dtype=bool)
    contributors = np.array(["m00", "m01__robust_z_60", "sequence_surprise:m00", "m00",
                             "m00", "seasonal_profile:m03", "m00", "m00"], dtype=object)
    metrics = ev.explained_event_metrics(series, alerts, contributors)
    assert (metrics.true_alerts, metrics.culprit_alerts, metrics.culprits_named) == (3, 3, 2)  # the false alert is not counted
    assert metrics.culprit_chance == pytest.approx((2 / 4 + 2 / 4 + 1 / 4) / 3)
    assert (metrics + metrics).culprit_rate == pytest.approx(2 / 3)
    assert metrics.as_dict("smd.")["smd.culprit_rate"] == pytest.approx(2 / 3)
    unexplained = ev.explained_event_metrics(series, alerts, None)  # the baselines name nothing
    assert unexplained.culprit_alerts == 0 and "culprit_rate" not in unexplained.as_dict()
    (tmp_path / "interpretation_label" / "machine-9-9.txt").write_text("4-5:1\n")
    with pytest.raises(ValueError, match="4-5 does not start inside a labelled anomaly"):
        ev.smd_series(tmp_path)
    (tmp_path / "interpretation_label" / "machine-9-9.txt").write_text("1-3:2,5\n")
    with pytest.raises(ValueError, match=r"1-3 names dimensions \[5\]; the machine has 4"):
        ev.smd_series(tmp_path)


def test_metrics_a_detector_could_not_learn_are_reported_per_series_and_the_series_is_scored_without_them():
    from perflake.anomaly.commands import format_row, summary_json

    frame = syn.with_anomaly("spike").assign(latency=np.nan)  # never measured on this host
    segment = np.where(np.arange(len(frame)) == syn.START, 0, -1)
    host = ev.Series("host", frame.iloc[: syn.FIT_ROWS], frame, segment, "c")
    scored = {"host": ev.score_series(host, "ensemble", {}, ev.DEFAULT_REFRACTORY_ROWS)}
    left_out = {"latency": "seasonal_profile: no value measured in the fit history; "
                           "sequence_surprise: no value measured in the fit history"}
    assert scored["host"].metrics_left_out == left_out and scored["host"].not_learned == ""

    evaluation = ev.evaluate("simulated", [host], scored, "ensemble", "fixed")
    assert evaluation.events.detected == 1 and evaluation.metrics()["metrics_left_out"] == 1
    assert "metrics not learned (scored without them): 1 in 1 series" in format_row(evaluation)
    assert json.loads(summary_json([evaluation]))[0]["metrics_left_out"] == {"host": left_out}


def test_a_share_of_nothing_prints_as_a_dash_not_as_zero():
    from perflake.anomaly.commands import format_row

    frame = syn.clean()
    quiet = ev.Series("quiet", frame.iloc[: syn.FIT_ROWS], frame, np.full(len(frame), -1), "c")  # no labelled anomaly
    scored = {"quiet": ev.score_series(quiet, "null", {}, ev.DEFAULT_REFRACTORY_ROWS)}
    row = format_row(ev.evaluate("simulated", [quiet], scored, "null", "fixed"))
    assert re.search(r"recall +–  precision +–  F1 0.000  incident precision +–  \(0/0 events, 0 alerts\)", row), row


def _fitted_on_first_rows(frame: pd.DataFrame) -> ev.Series:
    fit, test = frame.iloc[: syn.FIT_ROWS], frame.iloc[syn.FIT_ROWS :]
    return ev.Series("synthetic", fit, test, np.full(len(test), -1), "syn")


def test_a_series_a_detector_cannot_learn_alerts_on_nothing_is_named_and_the_others_are_scored():
    from perflake.anomaly.commands import format_row, summary_json

    frame = syn.with_anomaly("spike")
    segment = np.where(np.arange(len(frame)) == syn.START, 0, -1)
    long_one = ev.Series("long", frame.iloc[: syn.FIT_ROWS], frame, segment, "c")
    short_one = ev.Series("short", frame.iloc[:17], frame.iloc[:200], segment[:200], "c")  # 9 rows to calibrate on
    scored = {s.name: ev.score_series(s, "motif_novelty", {}, ev.DEFAULT_REFRACTORY_ROWS) for s in (long_one, short_one)}
    refusal = ("motif_novelty fitted on 17 rows: it learns windows of 8 rows from the first half of its history and "
               "calibrates on the second (at least 10 rows), so it needs at least 19")
    assert scored["short"].not_learned == refusal and not scored["short"].levels.any()
    assert make_detector("motif_novelty").fit(frame.iloc[:19]).calibration is not None  # the least it needs
    assert scored["long"].not_learned == "" and scored["long"].levels[syn.START] >= ev.FIXED_LEVEL

    evaluation = ev.evaluate("simulated", [long_one, short_one], scored, "motif_novelty", "fixed")
    assert evaluation.not_learned == {"short": refusal} and evaluation.metrics()["series_not_learned"] == 1
    assert evaluation.events.detected == 1
    assert "1 series not learned (no alerts)" in format_row(evaluation)
    assert json.loads(summary_json([evaluation]))[0]["not_learned"] == {"short": refusal}


def test_walk_forward_scores_each_day_with_a_detector_trained_on_the_rows_before_that_day_only():
    frame = syn.with_anomaly("level_shift")
    new_ensemble = lambda: make_detector("ensemble")  # noqa: E731
    levels = ev.detector_scores(_fitted_on_first_rows(frame), new_ensemble(), "1D")["score"].to_numpy()
    changed = frame.copy()
    changed.loc[2000:, "value"] += 100
    with_changed_future = ev.detector_scores(_fitted_on_first_rows(changed), new_ensemble(), "1D")["score"].to_numpy()
    before_change = 2000 - syn.FIT_ROWS
    np.testing.assert_array_equal(levels[:before_change], with_changed_future[:before_change])  # no look-ahead
    assert not np.array_equal(levels[before_change:], with_changed_future[before_change:])
    first_day = syn.PERIOD  # the fit rows end at midnight: the first day is scored by the detector fitted on them
    fitted_once = new_ensemble().fit(frame.iloc[: syn.FIT_ROWS]).score(frame.iloc[syn.FIT_ROWS :])["score"].to_numpy()
    np.testing.assert_allclose(levels[:first_day], fitted_once[:first_day])


def test_walk_forward_retraining_learns_a_new_normal_that_a_detector_fitted_once_keeps_alerting_on():
    frame = syn.clean(rows=3000)
    frame.loc[syn.FIT_ROWS :, "value"] += 25  # a lasting shift, right after the fit rows
    series = _fitted_on_first_rows(frame)
    fitted_once = make_detector("seasonal_profile").fit(series.fit).score(series.test)["score"].to_numpy()
    retrained_daily = ev.detector_scores(series, make_detector("seasonal_profile"), "1D")["score"].to_numpy()
    last_two_days = slice(-2 * syn.PERIOD, None)
    assert fitted_once[last_two_days].min() > ev.FIXED_LEVEL  # still far from the profile it learned
    assert retrained_daily[last_two_days].max() < ev.FIXED_LEVEL  # its profile is now mostly the new normal


def test_walk_forward_scores_on_with_the_model_in_service_when_every_retraining_is_refused(monkeypatch):
    series = _fitted_on_first_rows(syn.with_anomaly("level_shift"))
    detector = make_detector("median_mad")

    def refused(history):
        raise ValueError("a history it cannot learn")

    monkeypatch.setattr(detector, "refit", refused)
    scores = ev.detector_scores(series, detector, "1D")
    never_retrained = make_detector("median_mad").fit(series.fit)
    first_day = syn.PERIOD  # scored by the detector fitted on the fit rows, as in every walk-forward run; then streamed on
    test = series.test
    expected = pd.concat([never_retrained.score(test.iloc[:first_day]), never_retrained.update(test.iloc[first_day:])])
    np.testing.assert_allclose(scores["score"].to_numpy(), expected["score"].to_numpy())
    assert set(scores.attrs[ev.RETRAININGS_REFUSED].values()) == {"a history it cannot learn"}


def test_a_retraining_refused_for_a_metric_missing_for_weeks_is_counted_and_reported_with_why(tmp_path):
    import mlflow

    from perflake.anomaly import tracking
    from perflake.anomaly.commands import format_row, summary_json
    from tests.support import make_config

    frame = syn.clean()
    frame.loc[syn.FIT_ROWS : 2099, "value"] = np.nan  # the agent down for 24 days: most of the history unmeasured
    series = _fitted_on_first_rows(frame)
    scored = {"synthetic": ev.score_series(series, "knn_distance", {}, ev.DEFAULT_REFRACTORY_ROWS, refit_every="1D")}
    refused = scored["synthetic"].retrainings_refused
    assert refused and all("none of its features is defined on more than half" in why for why in refused.values())
    evaluation = ev.evaluate("simulated", [series], scored, "knn_distance", "fixed", "1D")
    assert evaluation.metrics()["retrainings_refused"] == len(refused)
    assert f"retrainings refused (the model in service kept): {len(refused)} in 1 series" in format_row(evaluation)
    assert json.loads(summary_json([evaluation]))[0]["retrainings_refused_by_series"] == {"synthetic": refused}
    run_id = tracking.log_evaluation(make_config("local", tmp_path), evaluation, {}, {})
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/retrainings_refused.json") == {"synthetic": refused}


def test_walk_forward_retraining_leaves_a_detector_that_learns_as_it_streams_learning():
    series = _fitted_on_first_rows(syn.with_anomaly("level_shift"))
    new_sequence_model = lambda: make_detector("sequence_surprise")  # noqa: E731
    streamed_on = new_sequence_model().fit(series.fit).score(series.test)["score"].to_numpy()
    np.testing.assert_array_equal(ev.detector_scores(series, new_sequence_model(), "1D")["score"].to_numpy(), streamed_on)


def test_the_season_is_found():
    assert dominant_period(syn.clean()["value"].to_numpy()) == syn.PERIOD
    assert dominant_period(np.random.default_rng(0).normal(size=2000)) is None


def test_the_season_is_found_through_a_value_that_is_not_finite_and_at_any_scale(recwarn):
    values = syn.clean()["value"].to_numpy()
    values[[100, 700]] = np.inf, -np.inf  # a rate divided by zero, twice
    assert dominant_period(values) == syn.PERIOD
    assert dominant_period(syn.clean()["value"].to_numpy() * 1e200) == syn.PERIOD
    assert [str(warning.message) for warning in recwarn] == []


def test_regimes_are_named_from_the_quietest_up():
    rng = np.random.default_rng(0)
    levels = np.repeat([10.0, 50.0, 100.0, 50.0, 10.0, 100.0], 120) + rng.normal(0, 1, 720)
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-05", periods=720, freq="min", tz="UTC"), "rps": levels})
    found = regimes(frame, "rps", window=30)
    assert found.labels.tolist() == [name for name in ("quiet", "normal", "peak", "normal", "quiet", "peak") for _ in range(4)]
    assert found.profile["mean"].is_monotonic_increasing

    levels[120:180] = np.nan  # the agent went silent for an hour of the busy period: not a quiet regime
    found = regimes(frame.assign(rps=levels), "rps", window=30)
    assert frame["timestamp"].iloc[120] not in found.labels.index and frame["timestamp"].iloc[150] not in found.labels.index
    assert found.labels.tolist() == ["quiet"] * 4 + ["normal"] * 2 + [
        name for name in ("peak", "normal", "quiet", "peak") for _ in range(4)]
    assert found.profile.loc["quiet", "mean"] > 9


def test_a_recurring_shape_is_found_as_a_motif():
    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, 1000)
    shape = 10 * np.sin(np.linspace(0, 3 * np.pi, 40))
    values[200:240] += shape
    values[700:740] += shape
    best = motifs(values, 40, top=1)[0]
    first, second = sorted([best.end, best.twin_end])
    assert second - first == 500 and 230 <= first <= 245  # the two occurrences, give or take the noise

    values[400:460] = values[850:910] = np.nan  # two gaps in the data: alike, but not a shape
    best = motifs(values, 40, top=1)[0]
    first, second = sorted([best.end, best.twin_end])
    assert second - first == 500 and 230 <= first <= 245
