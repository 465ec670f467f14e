import os
import signal

from perflake import services
from perflake.kafka import ensure_topics
from perflake.services.kafka import KafkaService
from perflake.services.process import wait_for


def states(config):
    return {item.name: item.state for item in services.status(config)}


def test_services_answer_once_up(running_services):
    # the metastore is off in tests that do not ask for it (see tests/support.py)
    assert states(running_services) == {"kafka": "running", "hdfs": "running", "metastore": "stopped"}
    assert ensure_topics(running_services, ["perflake.test.answer"]) == ["perflake.test.answer"]


def test_up_twice_starts_nothing_new(running_services):
    assert services.up(running_services, with_hdfs=True, say=lambda _: None) == []


def test_a_killed_broker_is_reported_dead_and_restarted_by_up(running_services):
    ensure_topics(running_services, ["perflake.test.survivor"])
    broker = KafkaService(running_services).process
    os.kill(broker.pid(), signal.SIGKILL)
    wait_for(lambda: not broker.is_running(), 10, "broker exit")
    assert states(running_services)["kafka"] == "dead"
    assert services.up(running_services, with_hdfs=True, say=lambda _: None) == ["kafka"]
    assert states(running_services)["kafka"] == "running"
    # topics survive a restart: storage is formatted on the first start only
    assert ensure_topics(running_services, ["perflake.test.survivor"]) == []
