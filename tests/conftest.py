"""Session fixtures: one temporary state folder, one local[2] Spark session (Delta on)."""

from __future__ import annotations

import pytest

from perflake.config import Config
from tests.support import make_config


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="session")
def local_config(state_dir) -> Config:
    return make_config("local", state_dir)


@pytest.fixture(scope="session")
def spark(local_config):
    from perflake.spark import get_spark

    session = get_spark(local_config, app_name="perflake-tests")
    yield session
    session.stop()
