"""The agent's background sender: queue -> envelopes -> packed messages -> Kafka or the spool.

One thread per agent. Every ``linger_ms`` it drains the in-memory queue, encodes the events,
packs them per topic into JSON-array messages and sends them with acks=all.

What happens to events on each path:
- Kafka acknowledges: done (counted in ``sent_events``).
- Kafka refuses or times out a message: the message is spooled whole, and the sender switches
  to spooling.
- A send unacknowledged for ``ack_timeout_s`` with no acknowledgement at all meanwhile, or no
  broker to connect to: the sender switches to spooling; new messages go to the spool, in order, behind what is already there.
- While spooling, the spool is replayed oldest first whenever a broker answers; once it is
  empty, sending is direct again. A replayed message keeps its events' ids, so a message
  that reached Kafka twice (acknowledgement lost) is one event again in silver.
- The spool is full: its policy drops the oldest segment or the new message; counted.
- ``close``: the queue is drained and sent; whatever Kafka has not acknowledged within
  ``shutdown_timeout_s`` is spooled and fsynced, to be replayed by the next start.
- A step fails unexpectedly (e.g. the spool's disk is full): the events it had drained are
  lost and the error is logged; the sender carries on, spooling.
- The process is killed: spooled messages survive; the queue and unacknowledged sends (at
  most ``ack_timeout_s`` of traffic) are lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from perflake.agent.encoding import EnvelopeEncoder, pack
from perflake.agent.spool import Spool
from perflake.agent.transport import Transport

log = logging.getLogger(__name__)
REPLAY_CHUNK = 32
MAX_BACKOFF_S = 5.0


@dataclass
class SenderStats:
    sent_events: int = 0
    sent_messages: int = 0
    failed_sends: int = 0
    unencodable_events: int = 0
    ack_latencies_ms: list[float] = field(default_factory=list)


@dataclass
class _InFlight:
    topic: str
    value: bytes
    events: int
    sent_at: float
    drained_after: float  # the previous drain: no event of this message was recorded before it


class Sender(threading.Thread):
    def __init__(
        self,
        queue: deque,
        encoder: EnvelopeEncoder,
        spool: Spool,
        key: bytes,
        connect: Callable[[float], Transport],
        collect: Callable[[], list[tuple[str, bytes]]],
        linger_s: float,
        max_message_bytes: int,
        report_interval_s: float,
        ack_timeout_s: float,
    ):
        super().__init__(name="perflake-agent-sender", daemon=True)
        self.queue, self.encoder, self.spool, self.key = queue, encoder, spool, key
        self._connect, self._collect = connect, collect
        self.linger_s, self.max_message_bytes = linger_s, max_message_bytes
        self.report_interval_s, self.ack_timeout_s = report_interval_s, ack_timeout_s
        self.stats = SenderStats()
        self.transport: Transport | None = None
        self._lock = threading.Lock()
        self._in_flight: dict[int, _InFlight] = {}
        self._next_id = 0
        self._stopping = threading.Event()
        self._spooling = not spool.is_empty()  # a previous run left messages: they go first
        self._retry_at = 0.0
        self._backoff_s = 0.5
        self._last_drain = time.monotonic()
        self._last_ack = 0.0
        self._replaying: tuple[list, dict] | None = None  # a spool chunk sent, awaiting its outcomes
        self._next_report = time.monotonic() + report_interval_s

    @property
    def is_spooling(self) -> bool:
        return self._spooling

    def in_flight(self) -> int:
        with self._lock:
            return sum(item.events for item in self._in_flight.values())

    def run(self) -> None:
        while not self._stopping.wait(self.linger_s):
            try:
                self.step()
            except Exception:  # never let the sender die; a failed step (e.g. the spool's disk is full) loses what it drained
                log.exception("agent sender step failed; the events it had drained are lost; carrying on")
                self._spooling = True

    def stop(self, timeout_s: float) -> None:
        """Drain and send what is queued, wait for acknowledgements, spool the rest."""
        self._stopping.set()
        self.join(timeout=timeout_s)
        self.step(final=True)
        deadline = time.monotonic() + timeout_s
        while self.transport is not None and not self._spooling and self.in_flight() and time.monotonic() < deadline:
            self.transport.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        with self._lock:
            unacknowledged, self._in_flight = list(self._in_flight.values()), {}
        for item in unacknowledged:
            self.spool.append(item.topic, self.key, item.value, item.events)
        if self.transport is not None:
            self.transport.close(1.0)
            self.transport = None
        self.spool.close()

    def step(self, final: bool = False) -> None:
        now = time.monotonic()
        items = []
        while self.queue:
            items.append(self.queue.popleft())
        drained_after, self._last_drain = self._last_drain, now
        encoded = self._encode(items)
        if final or now >= self._next_report:
            self._next_report = now + self.report_interval_s
            encoded += self._collect()
        by_topic: dict[str, list[bytes]] = {}
        for topic, event in encoded:
            by_topic.setdefault(topic, []).append(event)
        messages = [(topic, value, count)
                    for topic, events in by_topic.items() for value, count in pack(events, self.max_message_bytes)]
        self._check_acknowledgements(now)
        if self._spooling and not final:
            self._replay(now)
        for topic, value, count in messages:
            if self._spooling or not self._ensure_transport(now):
                self.spool.append(topic, self.key, value, count)
            else:
                self._send(topic, value, count, drained_after)
        if self.transport is not None:
            self.transport.poll()
        self.spool.sync(force=final)

    def _encode(self, items: list[tuple]) -> list[tuple[str, bytes]]:
        encoded = []
        for item in items:
            try:
                encoded.append((item[0].topic, item[0].encode(self.encoder, item)))
            except (TypeError, ValueError) as error:  # e.g. a payload value JSON cannot hold
                self.stats.unencodable_events += 1
                log.warning("agent dropped an event it cannot encode: %s", error)
        return encoded

    def _ensure_transport(self, now: float) -> bool:
        if self.transport is not None:
            return True
        if now < self._retry_at:
            return False
        try:
            self.transport = self._connect(self.ack_timeout_s)
            self._backoff_s = 0.5
            return True
        except Exception as error:  # no broker yet: spool, and try again after a pause
            if not self._spooling:
                log.warning("agent cannot reach Kafka (%s); spooling until it can", error)
            self._spooling = True
            self._pause(time.monotonic())
            return False

    def _send(self, topic: str, value: bytes, count: int, drained_after: float) -> None:
        with self._lock:
            message_id = self._next_id
            self._next_id += 1
            self._in_flight[message_id] = _InFlight(topic, value, count, time.monotonic(), drained_after)
        try:
            self.transport.send(topic, self.key, value, lambda error: self._on_done(message_id, error))
        except Exception as error:  # the client refused it outright (buffer full, no metadata)
            self._on_done(message_id, error)

    def _on_done(self, message_id: int, error: Exception | None) -> None:
        with self._lock:
            item = self._in_flight.pop(message_id, None)
        if item is None:  # already spooled by stop()
            return
        if error is None:
            self._last_ack = time.monotonic()
            self.stats.sent_events += item.events
            self.stats.sent_messages += 1
            self.stats.ack_latencies_ms.append((time.monotonic() - item.drained_after) * 1000)
            return
        self.stats.failed_sends += 1
        self._spooling = True
        self.spool.append(item.topic, self.key, item.value, item.events)

    def _check_acknowledgements(self, now: float) -> None:
        """Kafka is away when a send waited ``ack_timeout_s`` and nothing was acknowledged
        meanwhile (under heavy load acknowledgements lag, but they keep coming)."""
        with self._lock:
            oldest = min((item.sent_at for item in self._in_flight.values()), default=now)
        silent = now - max(oldest, self._last_ack) > self.ack_timeout_s
        if silent and not self._spooling:
            log.warning("agent: a send has waited %.1fs for Kafka; spooling", now - oldest)
            self._spooling = True
            self._pause(now)

    def _replay(self, now: float) -> None:
        """Send the spool, oldest first, a chunk at a time, until it is empty or Kafka fails.

        A chunk is sent once and its outcomes awaited across steps if need be: sending it
        again while the first sends may still succeed would put second copies on Kafka."""
        if now < self._retry_at or not self._ensure_transport(now):
            return
        budget_end = now + max(self.linger_s * 10, 0.5)
        while time.monotonic() < budget_end:
            if self._replaying is None:
                chunk = self.spool.read(REPLAY_CHUNK)
                if not chunk:
                    if self.in_flight() == 0 and self.spool.is_empty():
                        log.warning("agent: Kafka is back and the spool is sent")
                        self._spooling = False
                    return
                self._replaying = (chunk, self._send_chunk(chunk))
            chunk, outcomes = self._replaying
            while len(outcomes) < len(chunk) and time.monotonic() < budget_end:
                self.transport.flush(max(0.0, min(0.1, budget_end - time.monotonic())))
                self.transport.poll()
            if len(outcomes) < len(chunk):
                return  # still waiting: the next step looks again
            self._replaying = None
            delivered = 0
            while delivered < len(chunk) and outcomes[delivered] is None:
                delivered += 1
            if delivered:
                self.spool.commit(chunk[delivered - 1])
                self.stats.sent_events += sum(message.events for message in chunk[:delivered])
                self.stats.sent_messages += delivered
            if delivered < len(chunk):
                self._pause(time.monotonic())
                return

    def _send_chunk(self, chunk: list) -> dict[int, Exception | None]:
        """Hand spooled messages to Kafka; their outcomes fill the returned dict as they come."""
        outcomes: dict[int, Exception | None] = {}
        for index, message in enumerate(chunk):
            try:
                self.transport.send(message.topic, message.key, message.value,
                                    lambda error, index=index: outcomes.__setitem__(index, error))
            except Exception as error:
                outcomes.update((rest, error) for rest in range(index, len(chunk)))
                break
        return outcomes

    def _pause(self, now: float) -> None:
        self._retry_at = now + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, MAX_BACKOFF_S)
