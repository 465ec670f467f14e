"""The agent SDK: instruments and business events recorded in an ALL-USE service.

Recording costs the caller a few hundred nanoseconds and never blocks or raises a transport
error: it appends a tuple to a bounded in-memory queue, which the sender thread
(``perflake.agent.sender``) turns into envelopes, packs, and sends to Kafka or spools.

- ``timer`` / ``histogram``: every observation is a metric event (kind timer/histogram), so
  gold's percentiles come from the samples themselves; ``agent.sampling`` can thin them.
- ``counter``: increments add up in memory; every ``report_interval_s`` one event carries the
  increase over the interval (zero included, so a stalled flow shows as zeros, not silence).
- ``gauge``: set in memory; every interval one event carries the latest value.
- ``sample``: one metric event now (host collectors, batch loads).
- ``event`` and its named forms (``fill``, ``account_snapshot``, ``fork``, ...): one business
  event, checked against its contract.

A bad metric name, unit, value or payload raises ``AgentUsageError`` at the call site when
``agent.strict`` is on (development); otherwise the record is dropped and counted in
``agent.events_invalid``. A full queue drops the new event and counts it in
``agent.events_dropped``.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import random
import socket
import threading
import time
from collections import deque
from typing import Any

from perflake.agent.encoding import EnvelopeEncoder, Source, request_fields
from perflake.agent.sender import Sender
from perflake.agent.spool import Spool, claim_slot
from perflake.agent.transport import connect
from perflake.agent.validation import AgentUsageError, field_problems, payload_problems
from perflake.config import Config, get_config
from perflake.contracts import load_contracts

log = logging.getLogger(__name__)
_LIMIT = 1.7e308
_METRIC = ("metric", 1)


def _is_within(value, low: float) -> bool:
    """A finite number from ``low`` up (False for NaN, infinities and non-numbers)."""
    try:
        return low <= value <= _LIMIT
    except TypeError:
        return False


class _Series:
    """One metric time series: the constant part of its events, built once on the sender thread."""

    __slots__ = ("name", "unit", "kind", "fields", "tags", "topic", "_template")

    def __init__(self, name: str, unit: str, kind: str, fields: dict, tags: dict[str, str], topic: str):
        self.name, self.unit, self.kind, self.fields, self.tags, self.topic = name, unit, kind, fields, tags, topic
        self._template: tuple[str, str] | None = None

    def encode(self, encoder: EnvelopeEncoder, item: tuple) -> bytes:
        if self._template is None:
            self._template = encoder.metric_template(self.name, self.unit, self.kind, self.fields, self.tags)
        return encoder.metric(self._template, item[1], item[2], request_fields(item[3], item[4]))


class _EventType:
    __slots__ = ("event_type", "topic")

    def __init__(self, event_type: str, topic: str):
        self.event_type, self.topic = event_type, topic

    def encode(self, encoder: EnvelopeEncoder, item: tuple) -> bytes:
        return encoder.event(self.event_type, item[1], item[2], item[3])


class Timer:
    """Observations in ms; ``with timer.time():`` or ``@timer`` times a block or function
    (an exception escaping it marks the sample ``is_error``)."""

    def __init__(self, agent: Agent, series: _Series, sample_rate: float):
        self._agent, self._series, self._sample_rate = agent, series, sample_rate
        self._queue, self._capacity = agent._queue, agent._capacity

    def observe(self, value: float, status_code: int | None = None, is_error: bool | None = None,
                at: float | None = None) -> None:
        if self._sample_rate < 1.0 and random.random() >= self._sample_rate:
            return
        if not _is_within(value, -_LIMIT):
            return self._agent._reject(f"metric {self._series.name}: value {value!r} is not a finite number")
        if len(self._queue) >= self._capacity:
            self._agent.dropped_events += 1
            return
        self._queue.append((self._series, value, time.time() if at is None else at, status_code, is_error))

    def time(self) -> _Timing:
        return _Timing(self)

    def __call__(self, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            with _Timing(self):
                return function(*args, **kwargs)

        return timed


class Histogram(Timer):
    """Observations of any unit (slippage in bps, order size); every one is an event."""


class _Timing:
    __slots__ = ("_timer", "_started")

    def __init__(self, timer: Timer):
        self._timer = timer

    def __enter__(self) -> _Timing:
        self._started = time.perf_counter()
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        self._timer.observe((time.perf_counter() - self._started) * 1000, is_error=error_type is not None)


class Counter:
    """Increments add up in memory; the increase per report interval is sent."""

    def __init__(self, agent: Agent, series: _Series):
        self._agent, self.series = agent, series
        self._lock = threading.Lock()
        self._value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if not _is_within(amount, 0.0):
            return self._agent._reject(f"counter {self.series.name}: increment {amount!r} must be a finite number >= 0")
        with self._lock:
            self._value += amount

    def take(self) -> float:
        with self._lock:
            value, self._value = self._value, 0.0
        return value


class Gauge:
    """The latest value is sent each report interval (nothing until the first ``set``)."""

    def __init__(self, agent: Agent, series: _Series):
        self._agent, self.series = agent, series
        self.value: float | None = None

    def set(self, value: float) -> None:
        if not _is_within(value, -_LIMIT):
            return self._agent._reject(f"gauge {self.series.name}: value {value!r} is not a finite number")
        self.value = value


class _Rejected:
    """Stands in for an instrument whose definition broke the contract (non-strict mode): every use is counted."""

    def __init__(self, agent: Agent, reason: str):
        self._agent, self._reason = agent, reason

    def _count(self, *args, **kwargs) -> None:
        self._agent._reject(self._reason)

    observe = inc = set = _count

    def time(self) -> _Timing:
        return _Timing(self)

    def __call__(self, function):
        return function


class Agent:
    """One service's (or host's) agent. ``Agent(service=...)`` starts its sender; ``close()``
    (also run at exit) sends or spools what is left."""

    def __init__(
        self,
        service: str,
        config: Config | None = None,
        host: str | None = None,
        component: str | None = None,
        instance: str | None = None,
        tags: dict[str, str] | None = None,
    ):
        self.config = config or get_config()
        settings = self.config.agent
        self.strict = settings.strict
        self.contracts = load_contracts()
        self._queue: deque = deque()
        self._capacity = settings.queue_capacity
        self.dropped_events = 0
        self.invalid_events = 0
        self.source = Source(service, host or socket.gethostname(), instance or f"{os.getpid()}-{random.getrandbits(32):08x}",
                             component)
        self._check_source()
        self._encoder = EnvelopeEncoder(self.source, settings.static_tags | (tags or {}))
        self._counters: dict[_Series, Counter] = {}
        self._gauges: dict[_Series, Gauge] = {}
        self._series: dict[tuple, _Series] = {}
        self._event_types: dict[tuple[str, int], _EventType] = {}
        self._lock = threading.Lock()
        self._metrics_topic = self.config.topic(self.contracts[_METRIC].family)
        spool_dir, self._slot_lock = claim_slot(settings.spool.dir / service)
        spool = settings.spool
        self.spool = Spool(spool_dir, spool.max_bytes, spool.segment_bytes, spool.full_policy, spool.fsync_interval_ms)
        self._sender = Sender(
            queue=self._queue,
            encoder=self._encoder,
            spool=self.spool,
            key=f"{service}/{self.source.host}/{self.source.instance}".encode(),
            connect=lambda timeout_s: connect(self.config, timeout_s),
            collect=self._collect,
            linger_s=settings.linger_ms / 1000,
            max_message_bytes=settings.max_message_bytes,
            report_interval_s=settings.report_interval_s,
            ack_timeout_s=settings.ack_timeout_s,
        )
        self._health = {name: self.gauge(f"agent.{name}", unit) for name, unit in _HEALTH_GAUGES.items()}
        self._health_counters = {name: self.counter(f"agent.events_{name}") for name in _HEALTH_COUNTERS}
        self._reported = {name: 0 for name in _HEALTH_COUNTERS}
        self._closed = False
        self._sender.start()
        atexit.register(self.close)

    # --- instruments ---------------------------------------------------------------------

    def timer(self, name: str, endpoint: str | None = None, tags: dict[str, str] | None = None,
              unit: str = "ms") -> Timer | _Rejected:
        return self._observer(Timer, name, unit, "timer", endpoint, tags)

    def histogram(self, name: str, unit: str, endpoint: str | None = None,
                  tags: dict[str, str] | None = None) -> Histogram | _Rejected:
        return self._observer(Histogram, name, unit, "histogram", endpoint, tags)

    def counter(self, name: str, unit: str = "count", endpoint: str | None = None,
                tags: dict[str, str] | None = None) -> Counter | _Rejected:
        return self._aggregate(Counter, self._counters, name, unit, "counter", endpoint, tags)

    def gauge(self, name: str, unit: str, endpoint: str | None = None, tags: dict[str, str] | None = None) -> Gauge | _Rejected:
        return self._aggregate(Gauge, self._gauges, name, unit, "gauge", endpoint, tags)

    def sample(self, name: str, value: float, unit: str, kind: str = "gauge", tags: dict[str, str] | None = None,
               at: float | None = None) -> None:
        """One metric event now (or at ``at``, epoch seconds)."""
        series = self._series_for(name, unit, kind, None, tags)
        if isinstance(series, str):
            return self._reject(series)
        Timer(self, series, 1.0).observe(value, at=at)

    # --- business events -----------------------------------------------------------------

    def event(self, event_type: str, payload: dict[str, Any], at: float | None = None,
              tags: dict[str, str] | None = None) -> None:
        """One business event, checked against ``schemas/events/<event_type>.v1.json``."""
        contract = self.contracts.get((event_type, 1))
        if contract is None:
            return self._reject(f"unknown event type {event_type!r}; known: {', '.join(sorted(t for t, _ in self.contracts))}")
        problems = payload_problems(contract, payload)
        if problems:
            return self._reject(f"{event_type}: {'; '.join(problems)}")
        if len(self._queue) >= self._capacity:
            self.dropped_events += 1
            return
        self._queue.append((self._event_type(contract), payload, time.time() if at is None else at, tags))

    def fill(self, **payload) -> None:
        """A trade fill: fill_id, order_id, account_id, strategy, symbol, side, quantity, price, ..."""
        self.event("fill", payload)

    def order(self, **payload) -> None:
        self.event("order", payload)

    def account_snapshot(self, **payload) -> None:
        self.event("account_snapshot", payload)

    def fork(self, account_id: str, new_account_id: str, amount_usd: float, **extra) -> None:
        self.event("account_operation", {"operation": "fork", "account_id": account_id, "related_account_id": new_account_id,
                                         "amount_usd": amount_usd, **extra})

    def merge(self, account_id: str, into_account_id: str, amount_usd: float, **extra) -> None:
        self.event("account_operation", {"operation": "merge", "account_id": account_id, "related_account_id": into_account_id,
                                         "amount_usd": amount_usd, **extra})

    def reinvest(self, account_id: str, amount_usd: float, **extra) -> None:
        self.event("account_operation", {"operation": "reinvest", "account_id": account_id, "amount_usd": amount_usd, **extra})

    def protocol_decision(self, **payload) -> None:
        """A protocol decision; ``is_human_override=True`` with ``override_reason`` for a human override."""
        self.event("protocol_decision", payload)

    # --- lifecycle and health ------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        spool = self.spool.stats
        return {
            "queued": len(self._queue),
            "in_flight": self._sender.in_flight(),
            "sent": self._sender.stats.sent_events,
            "sent_messages": self._sender.stats.sent_messages,
            "spooled": spool.spooled_events,
            "spool_bytes": self.spool.pending_bytes,
            "dropped": self.dropped_events + spool.dropped_events,
            "invalid": self.invalid_events + self._sender.stats.unencodable_events,
            "corrupt_bytes": spool.corrupt_bytes,
            "is_spooling": self._sender.is_spooling,
            "sequence": self._encoder.sequence,
        }

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until nothing is queued, in flight or spooled; False if that took too long."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._queue and not self._sender.in_flight() and self.spool.is_empty() and not self._sender.is_spooling:
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self._sender.stop(self.config.agent.shutdown_timeout_s)
        os.close(self._slot_lock)

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------

    def _reject(self, reason: str) -> None:
        if self.strict:
            raise AgentUsageError(reason)
        self.invalid_events += 1
        log.warning("agent dropped an invalid record: %s", reason)

    def _check_source(self) -> None:
        for name, value, limit in (("service", self.source.service, 128), ("host", self.source.host, 255),
                                   ("instance", self.source.instance, 128)):
            if not value or len(value) > limit:
                raise AgentUsageError(f"source.{name} must be 1 to {limit} characters, got {value!r}")

    def _series_for(self, name: str, unit: str, kind: str, endpoint: str | None, tags: dict[str, str] | None,
                    sampled: float = 1.0) -> _Series | str:
        key = (name, unit, kind, endpoint, tuple(sorted((tags or {}).items())), sampled)
        with self._lock:
            if key in self._series:
                return self._series[key]
            fields = self.contracts[_METRIC].fields
            values = {"metric": name, "unit": unit, "kind": kind, "endpoint": endpoint}
            problems = [problem for spec in fields if spec.name in values for problem in field_problems(spec, values[spec.name])]
            bad_tags = [f"tag {k!r}={v!r} is not text"
                        for k, v in (tags or {}).items() if not isinstance(k, str) or not isinstance(v, str)]
            if problems or bad_tags:
                return f"metric {name!r}: {'; '.join(problems + bad_tags)}"
            series_tags = dict(tags or {}) | ({"sample_rate": str(sampled)} if sampled < 1.0 else {})
            fixed = {"endpoint": endpoint} if endpoint is not None else {}
            self._series[key] = _Series(name, unit, kind, fixed, series_tags, self._metrics_topic)
            return self._series[key]

    def _observer(self, cls: type, name: str, unit: str, kind: str, endpoint: str | None, tags: dict[str, str] | None):
        rate = self._sample_rate(name)
        series = self._series_for(name, unit, kind, endpoint, tags, rate)
        if isinstance(series, str):
            self._reject(series)
            return _Rejected(self, series)
        return cls(self, series, rate)

    def _aggregate(self, cls: type, registry: dict, name: str, unit: str, kind: str, endpoint: str | None,
                   tags: dict[str, str] | None):
        series = self._series_for(name, unit, kind, endpoint, tags)
        if isinstance(series, str):
            self._reject(series)
            return _Rejected(self, series)
        with self._lock:
            if series not in registry:  # one instrument per series (series are unique per definition)
                registry[series] = cls(self, series)
            return registry[series]

    def _sample_rate(self, name: str) -> float:
        raw = self.config.agent.sampling.get(name, "1.0")
        try:
            rate = float(raw)
        except ValueError:
            rate = -1.0
        if not 0.0 < rate <= 1.0:
            raise AgentUsageError(f"agent.sampling.{name} is {raw!r}; expected a share in (0, 1]")
        return rate

    def _event_type(self, contract) -> _EventType:
        if contract.key not in self._event_types:
            self._event_types[contract.key] = _EventType(contract.event_type, self.config.topic(contract.family))
        return self._event_types[contract.key]

    def _collect(self) -> list[tuple[str, bytes]]:
        """Runs on the sender thread each report interval: counters, gauges, own health."""
        self._update_health()
        now = time.time()
        with self._lock:
            counters, gauges = list(self._counters.values()), list(self._gauges.values())
        samples = [(counter.series, counter.take()) for counter in counters]
        samples += [(gauge.series, gauge.value) for gauge in gauges if gauge.value is not None]
        return [(series.topic, series.encode(self._encoder, (series, value, now, None, None))) for series, value in samples]

    def _update_health(self) -> None:
        stats = self.stats()
        latencies = sorted(self._sender.stats.ack_latencies_ms)
        self._sender.stats.ack_latencies_ms = []
        for name in _HEALTH_COUNTERS:
            increase, self._reported[name] = stats[name] - self._reported[name], stats[name]
            self._health_counters[name].inc(max(0, increase))
        self._health["queue_depth"].set(stats["queued"])
        self._health["spool_bytes"].set(stats["spool_bytes"])
        if latencies:
            self._health["send_latency_p50_ms"].set(at_share(latencies, 0.5))
            self._health["send_latency_p99_ms"].set(at_share(latencies, 0.99))


def at_share(ordered: list[float], share: float) -> float:
    """The value ``share`` of the way up a sorted, non-empty list (0.99: the p99; 1.0: the largest)."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


_HEALTH_GAUGES = {"queue_depth": "count", "spool_bytes": "bytes", "send_latency_p50_ms": "ms", "send_latency_p99_ms": "ms"}
_HEALTH_COUNTERS = ("sent", "spooled", "dropped", "invalid")
