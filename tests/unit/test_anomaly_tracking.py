"""MLflow: an evaluation run is tracked; a detector registered with an alias loads back and scores the same."""

import mlflow
import numpy as np

from perflake.anomaly import tracking
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


def test_an_evaluation_run_logs_metrics_and_plots(tmp_path):
    config = make_config("local", tmp_path)
    run_id = log_spike_evaluation(config, "ensemble")
    run = mlflow.get_run(run_id)
    assert run.data.metrics["event_recall"] == 1.0 and run.data.metrics["alert_precision"] == 1.0
    assert run.data.params["protocol"] == "fixed" and run.data.tags["kind"] == "evaluation"
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "plots")]
    assert artifacts == ["plots/spike.png"]
