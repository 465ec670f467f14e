"""``perflake simulate``: the ALL-USE workload driven through the agent SDK, with labelled anomalies.

Each (service, host) pair gets its own ``Agent``, as a real deployment would, so the events
travel the same road as production traffic: queue, packing, Kafka or the spool. The labels
of the injected anomalies are written to a CSV file (one row per anomaly: id, kind, start and
end in UTC, service, host, series, entity, magnitude) before the first event is sent.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from perflake.agent import Agent
from perflake.config import Config
from perflake.simulator.workload import Anomaly, Record, Workload

PROGRESS_EVERY_S = 5.0


@dataclass
class Summary:
    events: Counter = field(default_factory=Counter)
    simulated_s: float = 0.0
    wall_s: float = 0.0
    labels_file: Path | None = None
    instances: dict[tuple[str, str], str] = field(default_factory=dict)
    kafka_messages: int = 0  # messages the agents had acknowledged by Kafka when they closed

    @property
    def total(self) -> int:
        return sum(self.events.values())


def write_labels(anomalies: list[Anomaly], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(Anomaly.__dataclass_fields__))
        writer.writeheader()
        for anomaly in anomalies:
            row = anomaly.row()
            row["start"], row["end"] = (datetime.fromtimestamp(row[key], timezone.utc).isoformat() for key in ("start", "end"))
            writer.writerow(row)


def read_labels(path: Path) -> list[Anomaly]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        Anomaly(**{**row, "start": datetime.fromisoformat(row["start"]).timestamp(),
                   "end": datetime.fromisoformat(row["end"]).timestamp(), "magnitude": float(row["magnitude"])})
        for row in rows
    ]


class Recorder:
    """Sends ``Record``s through one agent per (service, host)."""

    def __init__(self, config: Config):
        self.config = config
        self.agents: dict[tuple[str, str], Agent] = {}
        self._timers: dict[tuple[str, str, str, str], object] = {}

    def record(self, item: Record) -> None:
        agent = self.agents.get((item.service, item.host))
        if agent is None:
            agent = self.agents[(item.service, item.host)] = Agent(item.service, self.config, host=item.host,
                                                                   tags={"simulated": "true"})
        if item.kind == "timer":
            key = (item.service, item.host, item.name, item.endpoint)
            timer = self._timers.get(key) or self._timers.setdefault(key, agent.timer(item.name, endpoint=item.endpoint))
            timer.observe(item.value, status_code=item.status_code, is_error=item.is_error, at=item.at)
        elif item.kind == "sample":
            agent.sample(item.name, item.value, item.unit, at=item.at)
        else:
            agent.event(item.name, item.payload, at=item.at)

    def close(self) -> None:
        for agent in self.agents.values():
            agent.close()


def simulate(
    config: Config,
    workload: Workload,
    labels_file: Path,
    speed: float = 1.0,
    max_events: int | None = None,
    on_progress: Callable[[Summary, float], None] | None = None,
) -> Summary:
    """Run ``workload`` from its start to its end (or ``max_events``); ``speed`` simulated seconds
    per wall second, 0 for as fast as possible. Closes the agents: what is not acknowledged by
    Kafka is in their spools when this returns."""
    summary = Summary(labels_file=labels_file)
    write_labels(workload.anomalies, labels_file)
    recorder = Recorder(config)
    started = time.monotonic()
    next_progress = started + PROGRESS_EVERY_S
    t = workload.start
    try:
        while t < workload.end and (max_events is None or summary.total < max_events):
            records = workload.second(t)
            for item in records if max_events is None else records[: max_events - summary.total]:
                recorder.record(item)
                summary.events[item.name if item.kind == "event" else "metric"] += 1
            t += 1
            summary.simulated_s = t - workload.start
            if speed > 0:
                time.sleep(max(0.0, started + summary.simulated_s / speed - time.monotonic()))
            if on_progress and time.monotonic() >= next_progress:
                next_progress += PROGRESS_EVERY_S
                on_progress(summary, t)
    finally:
        recorder.close()
        summary.wall_s = time.monotonic() - started
        summary.instances = {key: agent.source.instance for key, agent in recorder.agents.items()}
        summary.kafka_messages = sum(agent.stats()["sent_messages"] for agent in recorder.agents.values())
    return summary
