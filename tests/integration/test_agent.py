"""The agent against the real broker: outages, a damaged spool, the spool cap, a killed agent.

Each test gets topics of its own and checks what reached Kafka by consuming it back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from perflake import services
from perflake.agent import Agent
from perflake.agent.spool import SpooledMessage, read_frames
from perflake.kafka import consume_events, ensure_topics
from tests.support import PROJECT_DIR, make_config, make_environ, run_perflake

pytestmark = pytest.mark.integration
SERVICE = "ws4-market-integration"
OFFLINE = {"PERFLAKE__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"}  # nothing listens there


def agent_settings(suffix: str, **overrides: str) -> dict[str, str]:
    topics = {name: f"test.{name}.{suffix}" for name in ("metrics", "trading", "accounts", "protocol", "smoke")}
    settings = {
        "PERFLAKE__KAFKA__TOPICS": json.dumps(topics),
        "PERFLAKE__AGENT__ACK_TIMEOUT_S": "1",
        "PERFLAKE__AGENT__REPORT_INTERVAL_S": "3600",
        "PERFLAKE__AGENT__SHUTDOWN_TIMEOUT_S": "5",
    }
    return settings | overrides


@pytest.fixture
def settings(running_services):
    values = agent_settings(uuid.uuid4().hex[:8])
    config = make_config("local", running_services.paths.state_dir, **values)
    ensure_topics(config, config.kafka.topics.values(), partitions=1)
    return values


def consume(config, instance: str, expected: int, timeout_s: float = 60) -> list[dict]:
    """The events one agent instance put on the topics (every copy), once ``expected`` distinct arrived."""
    return consume_events(config, lambda event: event["source"]["instance"] == instance, expected, timeout_s)


def loads(events: list[dict]) -> list[float]:
    return sorted(e["payload"]["value"] for e in events if e["payload"].get("metric") == "load_test")


def record(agent: Agent, values: range, pause_s: float = 0.0) -> None:
    timer = agent.timer("load_test")
    for value in values:
        timer.observe(value)
        if pause_s:
            time.sleep(pause_s)


def test_broker_down_then_up_loses_nothing(running_services, settings, tmp_path):
    config = make_config("local", tmp_path, **settings)
    agent = Agent(SERVICE, config)
    try:
        record(agent, range(0, 500))
        assert agent.flush(30)
        services.down(running_services, say=print, only=["kafka"])
        record(agent, range(500, 1500), pause_s=0.002)
        time.sleep(2)
        assert agent.stats()["is_spooling"] and agent.stats()["spooled"] > 0
        services.up(running_services, say=print)
        record(agent, range(1500, 2000), pause_s=0.001)
        assert agent.flush(90), agent.stats()
    finally:
        services.up(running_services, say=print)
        agent.close()
    events = consume(config, agent.source.instance, expected=agent.stats()["sequence"])
    distinct = {e["event_id"]: e for e in events}
    assert loads(list(distinct.values())) == [float(v) for v in range(2000)]  # each once after dedupe by event_id
    assert sorted(e["source"]["sequence"] for e in distinct.values()) == list(range(agent.stats()["sequence"]))
    print(f"outage: {len(events) - len(distinct)} duplicate copies on Kafka (silver keeps one)")


def test_a_damaged_spool_delivers_every_intact_message_and_reports_the_rest(running_services, settings, tmp_path):
    small_messages = {"PERFLAKE__AGENT__MAX_MESSAGE_BYTES": "700"}  # two or three events per message
    offline = make_config("local", tmp_path, **(settings | OFFLINE | small_messages))
    with Agent(SERVICE, offline) as writer:
        record(writer, range(300))
    [segment] = (offline.agent.spool.dir / SERVICE / "0").glob("*.seg")
    data = bytearray(segment.read_bytes())
    messages = list(read_frames(bytes(data), 0, 0))
    assert all(isinstance(message, SpooledMessage) for message in messages)  # written whole
    frames = [0] + [message.end_offset for message in messages]  # where each frame starts
    # read through the spool's own framing: a frame's binary header may hold a "[" byte (its CRC, its lengths)
    damaged = [json.loads(messages[k].value) for k in (10, 20)]
    data[frames[11] - 3] ^= 0x01
    data[frames[20] : frames[20] + 2] = b"XX"
    segment.write_bytes(bytes(data))
    lost = {e["payload"]["value"] for message in damaged for e in message}

    online = make_config("local", tmp_path, **settings)
    with Agent(SERVICE, online) as reader:
        assert reader.flush(60)
        assert reader.stats()["corrupt_bytes"] == (frames[11] - frames[10]) + (frames[21] - frames[20])
    events = consume(online, writer.source.instance, expected=writer.stats()["sequence"] - sum(len(m) for m in damaged))
    assert loads(events) == sorted(float(v) for v in range(300) if float(v) not in lost)


def test_at_the_spool_cap_the_oldest_are_dropped_and_counted(running_services, settings, tmp_path):
    capped = {"PERFLAKE__AGENT__SPOOL__MAX_BYTES": "60000", "PERFLAKE__AGENT__SPOOL__SEGMENT_BYTES": "10000",
              "PERFLAKE__AGENT__MAX_MESSAGE_BYTES": "2000"}
    offline = make_config("local", tmp_path, **(settings | OFFLINE | capped))
    with Agent(SERVICE, offline) as writer:
        record(writer, range(3000))
    written, dropped = writer.stats()["sequence"], writer.stats()["dropped"]
    assert 0 < dropped < written

    online = make_config("local", tmp_path, **(settings | capped))
    with Agent(SERVICE, online) as reader:
        assert reader.flush(60)
    events = consume(online, writer.source.instance, expected=written - dropped)
    sequences = sorted({e["source"]["sequence"] for e in events})
    assert sequences == list(range(dropped, written))  # exactly the newest, none twice lost


KILLED_AGENT = """
import sys, time
from perflake.agent import Agent
agent = Agent("ws4-market-integration")
timer = agent.timer("load_test")
for value in range(1000):
    timer.observe(value)
while agent.stats()["spooled"] < 1000:
    time.sleep(0.05)
time.sleep(0.5)  # past the fsync interval
print(agent.source.instance, agent.stats()["sequence"], flush=True)
time.sleep(600)
"""


def test_a_killed_agent_s_spool_is_sent_once_by_the_next_start(running_services, settings, tmp_path):
    env = make_environ(tmp_path, **(settings | OFFLINE))
    child = subprocess.Popen([sys.executable, "-c", KILLED_AGENT], env=env, cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
    try:
        instance, written = child.stdout.readline().split()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

    config = make_config("local", tmp_path, **settings)
    with Agent(SERVICE, config) as restarted:
        assert restarted.flush(60)
        assert restarted.spool.is_empty()
    events = consume(config, instance, expected=int(written))
    assert len(events) == int(written)  # every spooled event, and no second copy
    assert loads(events) == [float(v) for v in range(1000)]


def test_the_host_agent_runs_as_a_service(running_services, settings, tmp_path):
    env = make_environ(tmp_path, **(settings | {"PERFLAKE__AGENT__HOST__COLLECTORS": '{"cpu": "0.5", "memory": "0.5"}'}))
    started = run_perflake(["agent", "start"], env, timeout_s=60)
    assert started.returncode == 0 and "host agent started" in started.stdout, started.stderr
    try:
        config = make_config("local", tmp_path, **settings)
        events = consume_events(config, lambda event: event["source"]["service"] == "host", expected=6, timeout_s=60)
        assert {"cpu_percent", "memory_used_bytes"} <= {e["payload"]["metric"] for e in events}
        assert run_perflake(["agent", "status"], env).stdout.startswith("host agent running")
    finally:
        stopped = run_perflake(["agent", "stop"], env, timeout_s=60)
    assert "host agent stopped" in stopped.stdout
    assert run_perflake(["agent", "status"], env).stdout.startswith("host agent stopped")
    log = (tmp_path / "logs" / "host-agent.log").read_text()
    assert "host agent stopped:" in log  # it closed its agent on SIGTERM: nothing left unsent
