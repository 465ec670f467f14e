"""Local services perflake runs on: a Kafka broker, the metastore's database and, when asked, HDFS.

``up`` is idempotent: a healthy service is left alone, a half-dead one is restarted, a port
held by another process is an error naming it. ``up`` returns only once every service
answers, or raises a ServiceError with the log tail; Ctrl-C during ``up`` stops what that
call started. No wait is unbounded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from perflake.config import Config
from perflake.services.hdfs import HdfsService
from perflake.services.kafka import KafkaService
from perflake.services.metastore import MetastoreService
from perflake.services.process import ServiceError, port_is_open, wait_for

Service = KafkaService | HdfsService | MetastoreService


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # running | starting | dead | stopped | external
    detail: str


def all_services(config: Config) -> list[Service]:
    """Every service perflake can run, in start order (down stops them in reverse)."""
    return [KafkaService(config), HdfsService(config), MetastoreService(config)]


def wanted_services(config: Config, with_hdfs: bool = False) -> list[Service]:
    """The services this profile manages; HDFS also when asked for."""
    kafka, hdfs, metastore = all_services(config)
    wanted = [kafka] if config.services.kafka.managed else []
    if with_hdfs or config.services.hdfs.managed:
        wanted.append(hdfs)
    if config.metastore.enabled and config.metastore.managed:
        wanted.append(metastore)
    return wanted


def up(config: Config, with_hdfs: bool = False, say: Callable[[str], None] = print) -> list[str]:
    """Start what is not running and wait until healthy. Returns the names it started."""
    started: list[Service] = []
    try:
        for service in wanted_services(config, with_hdfs):
            if _ensure_running(config, service, say):
                started.append(service)
    except BaseException:
        for service in reversed(started):
            _stop(config, service)
        raise
    return [service.name for service in started]


def down(config: Config, say: Callable[[str], None] = print, only: list[str] | None = None) -> None:
    """Stop the services under this state folder (HDFS before Kafka); ``only`` names a subset."""
    for service in reversed(all_services(config)):
        if only is not None and service.name not in only:
            continue
        if _stop(config, service):
            say(f"stopped {service.name}")


def status(config: Config) -> list[ServiceStatus]:
    statuses = []
    for service in all_services(config):
        processes = [process for process, _ in service.processes]
        states = [process.state() for process in processes]
        if all(state == "running" for state in states):
            state = "running" if service.is_healthy() else "starting"
            detail = service.describe()
        elif any(state != "stopped" for state in states):  # some ran: the rest died
            dead = [process for process, process_state in zip(processes, states) if process_state != "running"]
            state = "dead"
            detail = "; ".join(f"{p.name} exited (log {p.log_file})" for p in dead) + " -- `perflake services up` restarts it"
        else:
            state = "stopped"
            detail = service.describe()
        statuses.append(ServiceStatus(service.name, state, detail))
    return statuses


def _ensure_running(config: Config, service: Service, say: Callable[[str], None]) -> bool:
    timeout = config.services.start_timeout_s
    processes = [process for process, _ in service.processes]
    if all(process.is_running() for process in processes):
        _wait_healthy(service, timeout)
        say(f"{service.name}: already running -- {service.describe()}")
        return False
    if any(process.pid() is not None for process in processes):
        say(f"{service.name}: a process had died; restarting")
        _stop(config, service)
    taken = [port for port in service.ports if port_is_open(service.settings.host, port)]
    if taken:
        raise ServiceError(
            f"cannot start {service.name}: port(s) {', '.join(map(str, taken))} already taken by another process; "
            f"stop it or change the ports under [services.{service.name}] in conf/"
        )
    say(f"{service.name}: starting ...")
    service.prepare()
    for process, main_class in service.processes:
        process.start(service.command_for(main_class))
    try:
        _wait_healthy(service, timeout)
    except ServiceError as error:
        tails = "\n".join(f"--- last lines of {p.log_file}:\n{p.log_tail()}" for p in processes)
        _stop(config, service)
        raise ServiceError(f"{service.name} did not become healthy ({error})\n{tails}") from None
    except BaseException:  # Ctrl-C or a bug: leave nothing half-started behind
        _stop(config, service)
        raise
    say(f"{service.name}: up -- {service.describe()}")
    return True


def _wait_healthy(service: Service, timeout_s: float) -> None:
    processes = [process for process, _ in service.processes]
    wait_for(service.is_healthy, timeout_s, service.name, alive=lambda: all(p.is_running() for p in processes))


def _stop(config: Config, service: Service) -> bool:
    stopped = False
    for process, _ in reversed(service.processes):
        stopped = process.stop(config.services.stop_timeout_s) or stopped
    return stopped
