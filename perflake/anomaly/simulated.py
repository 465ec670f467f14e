"""The simulator's labelled anomalies as an evaluation data set.

``perflake.simulator.workload`` generates the ALL-USE workload with injected anomalies (latency
spikes, error bursts, throughput drops, memory leaks, slow drifts, market-data stalls, account
drawdowns, override surges). Here its records are rolled up per minute into the series an
operator watches, one per thing an anomaly can hit:

- ``requests/<service><endpoint>@<host>``: latency p95 and error rate;
- ``throughput/<service>``: requests per minute;
- ``host/<host>``: CPU and memory;
- ``feed/<feed>``: market-data latency, messages and stale share;
- ``account/<account>``: drawdown, every 5 minutes (a snapshot's period);
- ``decisions/ws2-protocol-engine``: protocol decisions and human overrides.

A row is labelled with the anomaly whose entity it is and whose time it overlaps. Detectors fit
on an anomaly-free history (the same workload process, its own seed) that ends where the
labelled test period begins. No files: the data set is regenerated from ``SimulatedSpec``, the
same spec giving the same rows and labels.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from perflake.simulator.workload import Anomaly, Record, Workload

MINUTE = 60
SNAPSHOT_GRAIN = 300
DAY = 86400


@dataclass(frozen=True)
class SimulatedSpec:
    history_days: float = 7.0
    test_days: float = 7.0
    rate: float = 8.0  # mean records per simulated second
    anomalies: int = 40
    seed: int = 11
    start: str = "2026-01-05T00:00:00+00:00"  # a Monday: the history covers whole weeks
    timezone_name: str = "America/New_York"

    @property
    def test_start(self) -> float:
        return pd.Timestamp(self.start).timestamp() + self.history_days * DAY


@dataclass(frozen=True)
class Rollup:
    """One period's series, by name, each a frame with ``timestamp`` and metric columns."""

    frames: dict[str, pd.DataFrame]
    anomalies: list[Anomaly]


def rollup(workload: Workload) -> Rollup:
    """Per-minute (accounts: per-snapshot) series of every record of ``workload``.

    Accounts forked during the run are left out: their names are reused by every run, so a fork
    of the history and one of the test period are different accounts under one name.
    """
    initial_accounts = set(workload.accounts)
    values: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for second in range(int(workload.start), int(workload.end)):
        for record in workload.second(second):
            for series, column, value, grain in _observations(record):
                values[(series, column)][int(record.at // grain * grain)].append(value)
    frames = _frames(values, workload.start, workload.end)
    return Rollup({name: frame for name, frame in frames.items()
                   if not name.startswith("account/") or name.removeprefix("account/") in initial_accounts}, workload.anomalies)


def _observations(record: Record) -> list[tuple[str, str, float, int]]:
    """(series, column, value, grain) that one record contributes."""
    if record.kind == "timer":
        entity = f"requests/{record.service}{record.endpoint}@{record.host}"
        return [(entity, "latency_ms", record.value, MINUTE), (entity, "is_error", float(record.is_error), MINUTE),
                (f"throughput/{record.service}", "requests", 1.0, MINUTE)]
    if record.kind == "sample":
        return [(f"host/{record.host}", record.name, record.value, MINUTE)]
    payload = record.payload or {}
    if record.name == "market_data":
        entity = f"feed/{payload['feed']}"
        return [(entity, "latency_ms", payload["latency_ms"], MINUTE),
                (entity, "message_count", payload["message_count"], MINUTE),
                (entity, "is_stale", float(payload["is_stale"]), MINUTE)]
    if record.name == "account_snapshot":
        return [(f"account/{payload['account_id']}", "drawdown_pct", payload["drawdown_pct"], SNAPSHOT_GRAIN)]
    if record.name == "protocol_decision":
        return [(f"decisions/{record.service}", "overrides", float(payload["is_human_override"]), MINUTE)]
    return []


# how a minute's values become a row: latency by its p95, flags by their share, counts by their sum
_AGGREGATES = {
    "latency_ms": ("latency_p95_ms", lambda v: float(np.percentile(v, 95))),
    "is_error": ("error_rate", np.mean),
    "requests": ("requests", np.sum),
    "cpu_percent": ("cpu_percent", np.mean),
    "memory_used_bytes": ("memory_used_bytes", np.mean),
    "message_count": ("messages", np.sum),
    "is_stale": ("stale_share", np.mean),
    "drawdown_pct": ("drawdown_pct", np.max),
    "overrides": ("overrides", np.sum),
}
_COUNTS = {"requests", "messages", "overrides"}  # an empty minute counted none; other columns carry the last value


def _frames(values, start: float, end: float) -> dict[str, pd.DataFrame]:
    columns: dict[str, dict[str, pd.Series]] = defaultdict(dict)
    for (series, column), buckets in values.items():
        name, aggregate = _AGGREGATES[column]
        columns[series][name] = pd.Series({bucket: aggregate(v) for bucket, v in buckets.items()}, dtype=float)
        if column == "overrides":
            columns[series]["decisions"] = pd.Series({bucket: len(v) for bucket, v in buckets.items()}, dtype=float)
    frames = {}
    for series, by_column in sorted(columns.items()):
        grain = SNAPSHOT_GRAIN if series.startswith("account/") else MINUTE
        grid = np.arange(int(start // grain * grain), int(end), grain)
        frame = pd.DataFrame({name: column.reindex(grid) for name, column in sorted(by_column.items())})
        for name in frame.columns:
            frame[name] = frame[name].fillna(0.0) if name in _COUNTS | {"decisions"} else frame[name].ffill().bfill()
        frame.insert(0, "timestamp", pd.to_datetime(grid, unit="s", utc=True))
        frames[series] = frame.reset_index(drop=True)
    return frames


def labelled_segments(name: str, timestamps: pd.Series, anomalies: list[Anomaly]) -> np.ndarray:
    """Per row, the index of the anomaly of this series' entity that the row's period overlaps, -1 outside."""
    entity = name.split("/", 1)[1]
    kinds = _KINDS_BY_FAMILY[name.split("/", 1)[0]]
    seconds = timestamps.astype("int64").to_numpy() // 10**9
    grain = int(seconds[1] - seconds[0]) if len(seconds) > 1 else MINUTE
    segment = np.full(len(seconds), -1)
    for index, anomaly in enumerate(anomalies):
        if anomaly.kind in kinds and anomaly.entity == entity:
            segment[(seconds < anomaly.end) & (seconds + grain > anomaly.start)] = index
    return segment


_KINDS_BY_FAMILY = {
    "requests": {"latency_spike", "error_burst", "slow_drift"},
    "throughput": {"throughput_drop"},
    "host": {"memory_leak"},
    "feed": {"market_data_stall"},
    "account": {"account_drawdown"},
    "decisions": {"override_rate"},
}


def generate(spec: SimulatedSpec) -> tuple[Rollup, Rollup]:
    """The anomaly-free history and the labelled test period, generated side by side."""
    history = Workload(pd.Timestamp(spec.start).timestamp(), spec.history_days * DAY, spec.rate, spec.seed + 1, 0,
                       spec.timezone_name)
    test = Workload(spec.test_start, spec.test_days * DAY, spec.rate, spec.seed, spec.anomalies, spec.timezone_name)
    with ProcessPoolExecutor(max_workers=2) as pool:
        history_rollup, test_rollup = pool.map(rollup, [history, test])
    return history_rollup, test_rollup
