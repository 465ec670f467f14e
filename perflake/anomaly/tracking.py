"""MLflow: every training and evaluation run tracked, detectors registered and loaded by alias.

The tracking store and registry come from ``[ml]`` in ``conf/``: a sqlite database and an
artifact folder under the state folder by default, a team's server by URI. A registered
detector is an MLflow pyfunc model named ``<model_prefix>-<detector>``: ``predict`` takes a
frame (``timestamp`` + metric columns) and returns the detector's scores; ``load_detector``
gives back the fitted ``Detector`` itself (``fit``/``score``/``update``/``explain``). Loading
needs the ``perflake`` package installed, as everywhere perflake runs.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from perflake.anomaly import detectors
from perflake.anomaly.detectors import Detector
from perflake.config import Config

MODEL_REQUIREMENTS = ["scikit-learn", "pandas", "numpy", "scipy"]


class IncompatibleDetector(ValueError):
    """A registered detector whose state was saved in another layout than this perflake's."""


class DetectorModel(mlflow.pyfunc.PythonModel):
    def __init__(self, detector: Detector):
        self.detector = detector
        self.state_format = detectors.STATE_FORMAT

    def load_context(self, context) -> None:
        # an older layout unpickles without error and fails at its first score: refuse it at loading
        registered = getattr(self, "state_format", None)  # none recorded before format 2
        if registered != detectors.STATE_FORMAT:
            raise IncompatibleDetector(
                f"this {self.detector.name} detector was registered with state format {registered or 'unrecorded (1)'}, "
                f"this perflake reads format {detectors.STATE_FORMAT}: train and register it again (perflake evaluate train)")

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.detector.score(model_input)


def use_tracking(config: Config) -> str:
    """Point MLflow at the configured store; the experiment's id (created on first use)."""
    mlflow.set_tracking_uri(config.ml.tracking_uri)
    mlflow.set_registry_uri(config.ml.tracking_uri)
    if config.ml.tracking_uri.startswith("sqlite:///"):
        Path(config.ml.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    experiment = mlflow.get_experiment_by_name(config.ml.experiment)
    if experiment is None:
        local_store = not config.ml.tracking_uri.startswith(("http://", "https://", "databricks"))
        return mlflow.create_experiment(config.ml.experiment, artifact_location=config.ml.artifact_root if local_store else None)
    return experiment.experiment_id


def model_name(config: Config, detector: str) -> str:
    return f"{config.ml.model_prefix}-{detector}"


def log_evaluation(config: Config, evaluation, params: dict, figures: dict[str, object]) -> str:
    """One run: parameters, metrics overall and per category, threshold per series, plots as artifacts."""
    experiment_id = use_tracking(config)
    name = f"evaluate {evaluation.detector} on {evaluation.dataset} ({evaluation.protocol})"
    with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
        mlflow.set_tags({"kind": "evaluation", "dataset": evaluation.dataset, "detector": evaluation.detector,
                         "protocol": evaluation.protocol})
        mlflow.log_params({**params, "dataset": evaluation.dataset, "detector": evaluation.detector,
                           "protocol": evaluation.protocol})
        mlflow.log_metrics({key.replace("/", "_"): float(value) for key, value in evaluation.metrics().items()})
        mlflow.log_dict(evaluation.thresholds, "thresholds.json")
        if evaluation.not_learned:
            mlflow.log_dict(evaluation.not_learned, "not_learned.json")
        if evaluation.metrics_left_out:
            mlflow.log_dict(evaluation.metrics_left_out, "metrics_left_out.json")
        if evaluation.retrainings_refused:
            mlflow.log_dict(evaluation.retrainings_refused, "retrainings_refused.json")
        for file_name, figure in figures.items():
            mlflow.log_figure(figure, f"plots/{file_name}")
    return run.info.run_id


def register_detector(config: Config, detector: Detector, params: dict, trained_on: str, alias: str | None,
                      name: str | None = None) -> tuple[str, str]:
    """Log a fitted detector in a training run and register it (as ``name``, by default the detector's model name);
    returns (model name, version)."""
    experiment_id = use_tracking(config)
    name = name or model_name(config, detector.name)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train {detector.name} on {trained_on}"):
        mlflow.set_tags({"kind": "training", "detector": detector.name, "family": detector.family, "trained_on": trained_on})
        mlflow.log_params({**params, "detector": detector.name, "trained_on": trained_on})
        # no signature: a schema would refuse the time-zone-aware timestamps the detectors read
        info = mlflow.pyfunc.log_model(name="detector", python_model=DetectorModel(detector), registered_model_name=name,
                                       pip_requirements=MODEL_REQUIREMENTS,
                                       metadata={"detector_state_format": detectors.STATE_FORMAT})
    version = str(info.registered_model_version)
    if alias:
        mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
    return name, version


def registered_version(config: Config, name: str, alias_or_version: str) -> str:
    """The version number an alias points at (a version number is itself)."""
    use_tracking(config)
    if alias_or_version.isdigit():
        return alias_or_version
    return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias_or_version).version)


def load_detector(config: Config, name: str, alias_or_version: str) -> Detector:
    """A registered detector by alias (``champion``) or version number."""
    use_tracking(config)
    reference = f"models:/{name}/{alias_or_version}" if alias_or_version.isdigit() else f"models:/{name}@{alias_or_version}"
    try:
        return mlflow.pyfunc.load_model(reference).unwrap_python_model().detector
    except IncompatibleDetector as error:
        raise IncompatibleDetector(f"{reference}: {error}") from None
