import socket
import sys

import pytest

from perflake import services
from perflake.services.hdfs import HdfsService
from perflake.services.kafka import KafkaService
from perflake.services.process import ManagedProcess, ServiceError, java_executable, wait_for
from tests.support import make_config


def test_broker_properties_come_from_config(tmp_path):
    config = make_config("local", tmp_path, PERFLAKE__SERVICES__KAFKA__PORT="29092",
                         PERFLAKE__SERVICES__KAFKA__CONTROLLER_PORT="29093")
    properties = dict(line.split("=", 1) for line in KafkaService(config).server_properties().splitlines())
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert properties["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert properties["process.roles"] == "broker,controller"
    assert properties["log.dirs"] == str(tmp_path / "kafka" / "data")
    assert properties["auto.create.topics.enable"] == "false"


def test_hdfs_site_has_webhdfs_on_and_the_configured_ports(tmp_path):
    config = make_config("hdfs", tmp_path, PERFLAKE__SERVICES__HDFS__NAMENODE_HTTP_PORT="29870")
    site = HdfsService(config).site_files()
    assert site["hdfs-site.xml"]["dfs.webhdfs.enabled"] == "true"
    assert site["hdfs-site.xml"]["dfs.namenode.http-address"] == "127.0.0.1:29870"
    assert site["core-site.xml"]["fs.defaultFS"] == "hdfs://127.0.0.1:18020"


def test_a_managed_process_starts_logs_and_stops(tmp_path):
    process = ManagedProcess("sleeper", tmp_path / "run", tmp_path / "logs")
    process.start([sys.executable, "-c", "print('hello', flush=True); import time; time.sleep(60)"])
    assert process.is_running()
    wait_for(lambda: "hello" in process.log_tail(), 10, "log line")
    assert process.stop(timeout_s=5) is True
    assert not process.is_running() and not process.pid_file.exists()
    assert process.stop(timeout_s=5) is False


def test_a_process_that_ignores_sigterm_is_killed(tmp_path):
    process = ManagedProcess("stubborn", tmp_path / "run", tmp_path / "logs")
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    process.start([sys.executable, "-c", code])
    wait_for(lambda: "ready" in process.log_tail(), 10, "ready")
    assert process.stop(timeout_s=1) is True
    assert not process.is_running()


# The main thread leaves with pthread_exit while another thread keeps a port open: the state
# of a multi-threaded JVM in the moments after SIGKILL, whose leader already shows as a zombie.
_LEADER_EXITS_FIRST = """
import ctypes, socket, threading, time
holder = socket.socket(); holder.bind(("127.0.0.1", 0)); holder.listen()
print(holder.getsockname()[1], flush=True)
threading.Thread(target=time.sleep, args=(60,)).start()
ctypes.CDLL(None).pthread_exit(None)
"""


def test_a_process_whose_threads_still_run_is_running_though_its_leader_is_a_zombie(tmp_path):
    process = ManagedProcess("leaderless", tmp_path / "run", tmp_path / "logs")
    process.start([sys.executable, "-c", _LEADER_EXITS_FIRST])
    wait_for(lambda: "Z" in leader_state(process.pid()), 10, "leader exit")
    assert process.is_running()  # its port is still held: `up` must not start a second one
    assert process.stop(timeout_s=5) is True
    assert not process.is_running()


def leader_state(pid: int) -> str:
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]


def test_wait_for_gives_up_at_its_deadline():
    with pytest.raises(ServiceError, match=r"thing: not ready after 1s"):
        wait_for(lambda: False, 1, "thing")


def test_wait_for_stops_when_the_process_dies():
    with pytest.raises(ServiceError, match="thing: the process exited"):
        wait_for(lambda: False, 30, "thing", alive=lambda: False)


def test_a_taken_port_is_an_error_naming_it(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = make_config("local", tmp_path, PERFLAKE__SERVICES__KAFKA__PORT=str(port))
        with pytest.raises(ServiceError, match=rf"cannot start kafka: port\(s\) {port} already taken"):
            services.up(config, say=lambda _: None)
    assert not KafkaService(config).process.is_running()


def test_missing_java_says_what_to_install(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ServiceError, match="Java 17 is not installed: install it"):
        java_executable()


def test_status_reports_a_dead_process(tmp_path):
    config = make_config("local", tmp_path)
    kafka = KafkaService(config)
    kafka.process.run_dir.mkdir(parents=True)
    kafka.process.pid_file.write_text("999999999\n")
    by_name = {item.name: item for item in services.status(config)}
    assert by_name["kafka"].state == "dead"
    assert "services up` restarts it" in by_name["kafka"].detail
    assert by_name["hdfs"].state == "stopped"
