"""The main job's feed and progress display: the simulated ALL-USE workload into Kafka through
the agents while the pipeline's background streams carry it to gold, one progress line every
few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable

from perflake.config import Config
from perflake.pipeline.runner import PROGRESS_INTERVAL_S, LayerStatus, status
from perflake.simulator import Summary, simulate
from perflake.simulator.workload import ANOMALY_KINDS, Workload

GOLD_PREVIEW = {
    "metric_rollups_1m": "SELECT service, endpoint, window_at, n_samples, round(p50_value, 1) AS p50_ms, "
    "round(p95_value, 1) AS p95_ms, round(p99_value, 1) AS p99_ms, round(error_rate, 3) AS error_rate "
    "FROM {table} WHERE metric = 'response_time_ms' ORDER BY window_at DESC, n_samples DESC LIMIT 8",
    "strategy_effectiveness_daily": "SELECT strategy, trade_date, n_fills, round(win_rate, 3) AS win_rate, "
    "round(realized_pnl_usd, 2) AS pnl_usd, round(mean_slippage_bps, 2) AS slippage_bps, round(reject_rate, 3) AS reject_rate "
    "FROM {table} ORDER BY trade_date DESC, strategy",
    "protocol_effectiveness_daily": "SELECT decision, trade_date, n_decisions, round(override_rate, 3) AS override_rate, "
    "round(success_rate, 3) AS success_rate, round(p95_decision_latency_ms, 1) AS p95_latency_ms "
    "FROM {table} ORDER BY trade_date DESC, decision",
}


def feed(config: Config, total: int, rate_per_s: int, on_tick: Callable[[int], None], seed: int = 0,
         start: float | None = None) -> Summary:
    """Simulate ``total`` events at about ``rate_per_s`` in real time, from ``start`` (epoch
    seconds; default now) on, with one of each anomaly kind the run is long enough for,
    calling ``on_tick(events)`` as it goes."""
    start = time.time() if start is None else start
    workload = Workload(start, total / rate_per_s + 1, rate_per_s, seed, len(ANOMALY_KINDS), config.pipeline.trading_timezone)
    labels = config.paths.state_dir / "simulator" / "labels-main-job.csv"
    return simulate(config, workload, labels, speed=1.0, max_events=total,
                    on_progress=lambda summary, _at: on_tick(summary.total))


def stream_rows(layer_status: LayerStatus) -> int:
    return sum(stream.get("total_input_rows", 0) for stream in layer_status.streams.values())


def progress_line(produced: int, statuses: list[LayerStatus]) -> str:
    parts = [f"produced {produced} events"]
    for item in statuses:
        if item.state != "running":
            parts.append(f"{item.layer}: {item.state} (log {item.log_file})")
            continue
        batches = sum(stream.get("total_batches", 0) for stream in item.streams.values())
        parts.append(f"{item.layer}: {stream_rows(item)} rows in {batches} batches")
    return " | ".join(parts)


def is_caught_up(statuses: list[LayerStatus], messages: int) -> bool:
    """Bronze has read every Kafka message produced, silver all that bronze wrote, and every stream is idle."""
    by_layer = {item.layer: item for item in statuses}
    bronze_rows, silver_rows = stream_rows(by_layer["bronze"]), stream_rows(by_layer["silver"])
    all_idle = all(stream.get("idle") for item in statuses for stream in item.streams.values())
    return bronze_rows >= messages and silver_rows >= bronze_rows and all_idle and all(item.streams for item in statuses)


def wait_until_caught_up(config: Config, produced: Summary, timeout_s: float, say: Callable[[str], None]) -> bool:
    """True once caught up on two polls in a row (a stream may not have noticed the last commit yet)."""
    deadline = time.monotonic() + timeout_s
    in_a_row = 0
    while time.monotonic() < deadline:
        statuses = status(config)
        say(progress_line(produced.total, statuses))
        if any(item.state == "dead" for item in statuses):
            return False
        in_a_row = in_a_row + 1 if is_caught_up(statuses, produced.kafka_messages) else 0
        if in_a_row == 2:
            return True
        time.sleep(PROGRESS_INTERVAL_S + 1)
    return False
