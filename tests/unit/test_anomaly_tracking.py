"""MLflow: an evaluation run is tracked; a detector registered with an alias loads back and scores the same."""

import mlflow
import numpy as np
import pytest

from perflake.anomaly import commands, detectors, tracking
from perflake.anomaly.detectors import make_detector
from tests import synthetic as syn
from tests.support import log_spike_evaluation, make_config


def test_a_registered_detector_loads_by_alias_and_scores_the_same(tmp_path):
    config = make_config("local", tmp_path)
    frame = syn.with_anomaly("spike")
    detector = make_detector("isolation_forest").fit(frame.iloc[: syn.FIT_ROWS])
    name, version = tracking.register_detector(config, detector, {"seed": 0}, "synthetic", "champion")
    assert (name, version) == ("perflake-anomaly-isolation_forest", "1")
    assert config.ml.tracking_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"

    loaded = tracking.load_detector(config, name, "champion")
    np.testing.assert_allclose(loaded.score(frame)["score"], detector.score(frame)["score"])
    predicted = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(frame)  # the plain MLflow way
    assert predicted["score"].idxmax() == syn.START

    tracking.register_detector(config, detector, {"seed": 0}, "synthetic", "champion")
    assert str(mlflow.MlflowClient().get_model_version_by_alias(name, "champion").version) == "2"
    assert type(tracking.load_detector(config, name, "1")) is type(detector)


def test_scoring_a_file_names_the_metrics_the_registered_detector_could_not_learn_and_scores_the_others(tmp_path):
    config = make_config("local", tmp_path)
    frame = syn.with_anomaly("spike").assign(latency=np.nan)  # the host began reporting latency after the fit history
    detector = make_detector("ensemble").fit(frame.iloc[: syn.FIT_ROWS])
    name, _ = tracking.register_detector(config, detector, {}, "synthetic", "champion")
    host = tmp_path / "host.csv"
    frame.assign(timestamp=frame["timestamp"].astype("int64") // 10**9).to_csv(host, index=False)  # as Unix seconds
    report = commands.score_file(config, name, "champion", host, top=1).splitlines()
    assert report[1] == ("  metric 'latency' not learned from the fit history, left out until a refit learns it: "
                         "seasonal_profile: no value measured in the fit history; "
                         "sequence_surprise: no value measured in the fit history")
    assert report[2].startswith(f"  {frame['timestamp'].iloc[syn.START]}  ensemble (ensemble)") and report[2].count(":value") == 1


def test_a_detector_trained_on_a_csv_of_history_is_registered_and_finds_a_spike_in_a_new_file(tmp_path):
    config = make_config("local", tmp_path)
    frame = syn.with_anomaly("spike")
    history, new = tmp_path / "history.csv", tmp_path / "new.csv"
    frame.iloc[: syn.FIT_ROWS].to_csv(history, index=False)
    frame.iloc[syn.FIT_ROWS :].to_csv(new, index=False)
    said = commands.train_file(config, history, "seasonal_profile", "champion")
    name = "perflake-anomaly-seasonal_profile"
    assert said.startswith(f"registered {name} version 1 trained on {syn.FIT_ROWS:,} rows as @champion")
    version = mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
    assert mlflow.get_run(version.run_id).data.params["file"] == str(history)
    report = commands.score_file(config, name, "champion", new, top=1).splitlines()
    assert report[1].startswith(f"  {frame['timestamp'].iloc[syn.START]}  seasonal_profile")


def test_a_registered_detector_retrained_on_newer_history_is_its_next_version_and_learns_the_new_normal(tmp_path):
    config = make_config("local", tmp_path)
    frame = syn.with_anomaly("level_shift")  # 25 higher from row START on, for good: a new normal
    files = {"before": slice(0, syn.FIT_ROWS), "since": slice(syn.START, syn.START + 600), "later": slice(syn.START + 600, None)}
    for part, rows in files.items():
        files[part] = tmp_path / f"{part}.csv"
        frame.iloc[rows].to_csv(files[part], index=False)
    name = "perflake-anomaly-seasonal_profile"
    commands.train_file(config, files["before"], "seasonal_profile", "champion")
    said = commands.train_file(config, files["since"], None, "champion", retrain=f"{name}@champion")
    assert said.startswith(f"registered {name} version 2 retrained from {name} version 1 on 600 rows as @champion")
    champion = mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
    assert str(champion.version) == "2" and mlflow.get_run(champion.run_id).data.params["retrained_from"] == f"{name} version 1"
    later = commands.read_metric_file(files["later"])
    assert tracking.load_detector(config, name, "1").score(later)["score"].min() >= 4  # the old normal: all of it alerts
    assert tracking.load_detector(config, name, "champion").score(later)["score"].max() < 4


def test_training_on_a_csv_that_cannot_be_learned_names_the_file_and_registers_nothing(tmp_path):
    config = make_config("local", tmp_path)
    history = tmp_path / "history.csv"
    syn.clean().iloc[:5].to_csv(history, index=False)
    too_few = "seasonal_profile: no metric to learn from: metric 'value': measured on 5 rows"
    with pytest.raises(ValueError, match=rf"^{history}: {too_few}"):
        commands.train_file(config, history, "seasonal_profile", "champion")
    history.write_text("")
    with pytest.raises(ValueError, match=rf"^{history}: the file is empty"):
        commands.train_file(config, history, "seasonal_profile", "champion")
    tracking.use_tracking(config)
    assert mlflow.MlflowClient().search_registered_models() == []


def test_an_evaluation_run_logs_metrics_and_plots(tmp_path):
    config = make_config("local", tmp_path)
    run_id = log_spike_evaluation(config, "ensemble")
    run = mlflow.get_run(run_id)
    assert run.data.metrics["event_recall"] == 1.0 and run.data.metrics["alert_precision"] == 1.0
    assert run.data.params["protocol"] == "fixed" and run.data.tags["kind"] == "evaluation"
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "plots")]
    assert artifacts == ["plots/spike.png"]


def test_a_detector_registered_in_another_state_format_is_refused_when_loaded(tmp_path, monkeypatch):
    config = make_config("local", tmp_path)
    frame = syn.with_anomaly("spike")
    detector = make_detector("isolation_forest").fit(frame.iloc[: syn.FIT_ROWS])
    name, _ = tracking.register_detector(config, detector, {"seed": 0}, "synthetic", "champion")
    assert mlflow.models.get_model_info(f"models:/{name}@champion").metadata == {"detector_state_format": detectors.STATE_FORMAT}

    registered = detectors.STATE_FORMAT
    monkeypatch.setattr(detectors, "STATE_FORMAT", registered + 1)  # this perflake's detectors changed shape
    refusal = (f"this isolation_forest detector was registered with state format {registered}, this perflake reads format "
               f"{registered + 1}: train and register it again")
    with pytest.raises(tracking.IncompatibleDetector) as refused:
        tracking.load_detector(config, name, "champion")
    assert str(refused.value).startswith(f"models:/{name}@champion: {refusal}")
    with pytest.raises(tracking.IncompatibleDetector, match=refusal):  # the plain MLflow way too
        mlflow.pyfunc.load_model(f"models:/{name}@champion")


def test_a_detector_registered_before_formats_were_recorded_is_refused(tmp_path, monkeypatch):
    config = make_config("local", tmp_path)
    detector = make_detector("median_mad").fit(syn.with_anomaly("spike").iloc[: syn.FIT_ROWS])
    before_formats = tracking.DetectorModel.__init__

    def without_format(self, fitted):
        before_formats(self, fitted)
        del self.state_format

    monkeypatch.setattr(tracking.DetectorModel, "__init__", without_format)
    name, version = tracking.register_detector(config, detector, {}, "synthetic", None)
    refusal = rf"state format unrecorded \(1\), this perflake reads format {detectors.STATE_FORMAT}:"
    with pytest.raises(tracking.IncompatibleDetector, match=refusal):
        tracking.load_detector(config, name, version)
