"""Real services for the integration tier: a Kafka broker and HDFS on test ports, started
once per session under the session's temporary state folder and stopped at the end."""

from __future__ import annotations

import pytest

from perflake import services
from tests.support import make_config


@pytest.fixture(scope="session")
def running_services(state_dir):
    """Kafka + HDFS up; yields the hdfs-profile config that points at them."""
    config = make_config("hdfs", state_dir)
    services.up(config, with_hdfs=True, say=print)
    yield config
    services.down(config, say=print)


@pytest.fixture(scope="session")
def hdfs_config(running_services):
    return running_services
