"""A team's MLflow server (a real ``mlflow server``): evaluations tracked, detectors registered,
their files kept by the server, and loaded back by alias through its URI alone."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest

from perflake.anomaly import tracking
from perflake.anomaly.detectors import make_detector
from perflake.services.process import wait_for
from tests import synthetic as syn
from tests.support import log_spike_evaluation, make_config


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def mlflow_server(tmp_path):
    """An MLflow tracking server with its own store and artifact folder; yields (URL, server folder)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server_dir = tmp_path / "team-server"
    server_dir.mkdir()
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{server_dir}/mlflow.db",
               "--artifacts-destination", str(server_dir / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    url = f"http://127.0.0.1:{port}"
    with open(server_dir / "server.log", "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: _healthy(url), 120, f"mlflow server on port {port}", alive=lambda: server.poll() is None)
            yield url, server_dir
        finally:
            server.terminate()
            server.wait(30)


def test_a_teams_server_tracks_evaluations_and_serves_detectors_by_alias(mlflow_server, tmp_path):
    url, server_dir = mlflow_server
    config = make_config("local", tmp_path / "client", PERFLAKE__ML__TRACKING_URI=url)
    frame = syn.with_anomaly("spike")

    detector = make_detector("ensemble").fit(frame.iloc[: syn.FIT_ROWS])
    name, version = tracking.register_detector(config, detector, {"seed": 0}, "synthetic", "champion")
    loaded = tracking.load_detector(config, name, "champion")
    np.testing.assert_allclose(loaded.score(frame)["score"], detector.score(frame)["score"])
    assert str(mlflow.MlflowClient(url).get_model_version_by_alias(name, "champion").version) == version

    run = mlflow.MlflowClient(url).get_run(log_spike_evaluation(config, "median_mad"))
    assert run.data.metrics["event_recall"] == 1.0

    # the model and the plot went to the server's artifact store; the client's machine keeps nothing
    kept = {path.name for path in (server_dir / "artifacts").rglob("*")}
    assert {"python_model.pkl", "spike.png"} <= kept, sorted(kept)
    assert not (tmp_path / "client" / "mlflow").exists()
