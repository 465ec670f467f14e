"""Envelopes as JSON bytes, cheaply, and their packing into Kafka messages.

Runs on the agent's sender thread, never the caller's. Each metric series has its constant
JSON fragments built once; per sample only the sequence, id, time and value are formatted.
An ``event_id`` is UUID-shaped: 80 random bits fixed per agent instance, then the 48-bit
sequence, so it is unique without a random draw per event and a replayed event keeps it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    service: str
    host: str
    instance: str
    component: str | None = None

    def json_fields(self) -> str:
        fields = {"service": self.service, "host": self.host, "instance": self.instance}
        if self.component:
            fields["component"] = self.component
        return json.dumps(fields, separators=(",", ":"))[:-1]  # left open for the sequence


class EnvelopeEncoder:
    """Numbers the events of one source and writes their envelopes (schemas/events/envelope.v1.json)."""

    def __init__(self, source: Source, static_tags: dict[str, str], instance_bits: int | None = None):
        bits = uuid.uuid4().int >> 48 if instance_bits is None else instance_bits
        hex_id = f"{bits:020x}"
        self._id_prefix = f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-"
        self._source = source.json_fields()
        self.static_tags = dict(static_tags)
        self.sequence = 0
        self._second = -1
        self._second_text = ""

    def timestamp(self, at: float) -> str:
        second = int(at // 1)
        if second != self._second:
            self._second, self._second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((at - second) * 1_000_000):06d}+00:00"

    def head(self, event_type: str, at: float) -> str:
        """The envelope up to its tags: id, type, numbered source, time (consumes a sequence number)."""
        sequence = self.sequence
        self.sequence = sequence + 1
        return (
            f'{{"event_id":"{self._id_prefix}{sequence:012x}","schema_version":1,"event_type":"{event_type}",'
            f'"source":{self._source},"sequence":{sequence}}},"event_at":"{self.timestamp(at)}",'
        )

    def event(self, event_type: str, payload: dict, at: float, tags: dict[str, str] | None) -> bytes:
        all_tags = self.static_tags | tags if tags else self.static_tags
        body = json.dumps({"tags": all_tags, "payload": payload}, separators=(",", ":"))[1:]
        return (self.head(event_type, at) + body).encode()

    def metric_template(self, name: str, unit: str, kind: str, fields: dict, tags: dict[str, str]) -> tuple[str, str]:
        """(text between head and value, text after the value) of one metric series."""
        all_tags = json.dumps(self.static_tags | tags, separators=(",", ":"))
        fixed = json.dumps({"metric": name, "unit": unit, "kind": kind} | fields, separators=(",", ":"))[1:-1]
        return f'"tags":{all_tags},"payload":{{{fixed},"value":', "}}"

    def metric(self, template: tuple[str, str], value: float, at: float, extra: str = "") -> bytes:
        return f"{self.head('metric', at)}{template[0]}{float(value)!r}{extra}{template[1]}".encode()


def request_fields(status_code: int | None, is_error: bool | None) -> str:
    """The per-sample fields of a request timer, as JSON text to put after the value."""
    text = ""
    if status_code is not None:
        text += f',"status_code":{status_code}'
    if is_error is not None:
        text += ',"is_error":true' if is_error else ',"is_error":false'
    return text


def pack(events: Iterable[bytes], max_bytes: int) -> list[tuple[bytes, int]]:
    """Events -> JSON-array messages of at most ``max_bytes`` (an event larger than that goes
    alone), each with its event count."""
    messages, chunk, size = [], [], 2
    for event in events:
        if chunk and size + len(event) + 1 > max_bytes:
            messages.append((b"[" + b",".join(chunk) + b"]", len(chunk)))
            chunk, size = [], 2
        chunk.append(event)
        size += len(event) + 1
    if chunk:
        messages.append((b"[" + b",".join(chunk) + b"]", len(chunk)))
    return messages
