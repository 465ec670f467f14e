"""The host agent: system metrics with psutil, each collector on its own interval.

``perflake agent run`` runs it in the foreground until SIGTERM or Ctrl-C (then closes the
agent: unsent samples are sent or spooled); ``perflake agent start|stop|status`` runs it as a
background service with a pid and a log file. Samples go out as metric events of the service
``host`` (``source.host`` is the machine's name); rates are per second over the interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil

from perflake.agent.core import Agent
from perflake.config import Config, ConfigError

SERVICE = "host"
Sample = tuple[str, float, str, dict[str, str]]  # metric, value, unit, tags


class RateMeter:
    """Per-second rates of cumulative counters between two readings."""

    def __init__(self):
        self._last: dict[str, tuple[float, float]] = {}

    def rate(self, name: str, total: float, now: float) -> float | None:
        previous = self._last.get(name)
        self._last[name] = (total, now)
        if previous is None or now <= previous[1] or total < previous[0]:
            return None  # first reading, or the counter was reset
        return (total - previous[0]) / (now - previous[1])


def cpu_samples(meter: RateMeter, now: float) -> list[Sample]:
    load_1m, _, _ = psutil.getloadavg()
    return [("cpu_percent", psutil.cpu_percent(interval=None), "percent", {}), ("load_1m", load_1m, "ratio", {})]


def memory_samples(meter: RateMeter, now: float) -> list[Sample]:
    memory, swap = psutil.virtual_memory(), psutil.swap_memory()
    return [
        ("memory_used_bytes", float(memory.used), "bytes", {}),
        ("memory_available_bytes", float(memory.available), "bytes", {}),
        ("memory_percent", memory.percent, "percent", {}),
        ("swap_used_bytes", float(swap.used), "bytes", {}),
    ]


def disk_samples(meter: RateMeter, now: float) -> list[Sample]:
    samples = []
    for partition in psutil.disk_partitions(all=False):
        try:
            usage = psutil.disk_usage(partition.mountpoint)
        except OSError:  # a mount that went away or is not readable
            continue
        samples.append(("disk_used_percent", usage.percent, "percent", {"mount": partition.mountpoint}))
    counters = psutil.disk_io_counters()
    if counters is not None:
        for name, total in (("disk_read_bytes_per_s", counters.read_bytes), ("disk_write_bytes_per_s", counters.write_bytes)):
            rate = meter.rate(name, total, now)
            if rate is not None:
                samples.append((name, rate, "per_s", {}))
    return samples


def network_samples(meter: RateMeter, now: float) -> list[Sample]:
    counters = psutil.net_io_counters()
    totals = {
        "net_sent_bytes_per_s": counters.bytes_sent,
        "net_recv_bytes_per_s": counters.bytes_recv,
        "net_errors_per_s": counters.errin + counters.errout,
        "net_drops_per_s": counters.dropin + counters.dropout,
    }
    return [(name, rate, "per_s", {}) for name, total in totals.items() if (rate := meter.rate(name, total, now)) is not None]


def process_samples(meter: RateMeter, now: float, top: int) -> list[Sample]:
    """The ``top`` processes by CPU since the last reading (psutil measures between calls)."""
    readings = []
    for process in psutil.process_iter(["name", "memory_info", "num_threads"]):
        try:
            readings.append((process.cpu_percent(interval=None), process))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    samples = []
    for cpu, process in sorted(readings, key=lambda item: item[0], reverse=True)[:top]:
        tags = {"process": str(process.info["name"]), "pid": str(process.pid)}
        memory = process.info["memory_info"]
        samples.append(("process_cpu_percent", cpu, "percent", tags))
        if memory is not None:
            samples.append(("process_rss_bytes", float(memory.rss), "bytes", tags))
        if process.info["num_threads"] is not None:
            samples.append(("process_threads", float(process.info["num_threads"]), "count", tags))
    return samples


def collectors(config: Config) -> list[tuple[str, float, Callable[[RateMeter, float], list[Sample]]]]:
    """(name, interval_s, collect) of each enabled collector."""
    known = {
        "cpu": cpu_samples,
        "memory": memory_samples,
        "disk": disk_samples,
        "network": network_samples,
        "process": lambda meter, now: process_samples(meter, now, config.agent.host.top_processes),
    }
    enabled = []
    for name, raw in config.agent.host.collectors.items():
        if name not in known:
            raise ConfigError(f"unknown collector agent.host.collectors.{name}; known: {', '.join(known)}")
        try:
            interval = float(raw)
        except ValueError:
            interval = 0.0
        if interval <= 0:
            raise ConfigError(f"agent.host.collectors.{name} is {raw!r}; expected an interval in seconds > 0")
        enabled.append((name, interval, known[name]))
    return enabled


def run(config: Config, stop: threading.Event, say: Callable[[str], None] = print) -> dict[str, int]:
    """Collect until ``stop`` is set; returns the samples recorded per collector."""
    enabled = collectors(config)
    agent = Agent(SERVICE, config)
    meter = RateMeter()
    due = {name: 0.0 for name, _, _ in enabled}
    recorded = {name: 0 for name, _, _ in enabled}
    say(f"host agent: {', '.join(f'{name} every {interval:g}s' for name, interval, _ in enabled)}; spool {agent.spool.directory}")
    try:
        while not stop.is_set():
            now = time.monotonic()
            for name, interval, collect in enabled:
                if now < due[name]:
                    continue
                due[name] = now + interval
                for metric, value, unit, tags in collect(meter, now):
                    agent.sample(metric, value, unit, tags=tags)
                    recorded[name] += 1
            stop.wait(max(0.05, min(due.values()) - time.monotonic()))
    finally:
        agent.close()
        say(f"host agent stopped: {recorded} samples; agent {agent.stats()}")
    return recorded
