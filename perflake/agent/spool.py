"""The agent's spool: where messages wait, in order, while Kafka cannot take them.

A folder of append-only segment files ``<number>.seg``. Each message is one frame::

    MAGIC (4 bytes) | body length (u32) | events in the message (u32) | CRC-32 of count+body (u32) | body
    body = topic length (u16) | topic | key length (u16) | key | value

Writes go straight to the file (no user-space buffer) and are fsynced at least every
``fsync_interval_ms``: a killed process loses nothing it spooled; a power cut loses at most
that interval. Reading resumes from ``cursor`` (segment and offset of the first message not yet
acknowledged by Kafka), which is rewritten atomically after each acknowledged chunk, so a
crash mid-replay re-sends at most one chunk (silver drops the second copy by event_id).

A corrupt or truncated frame is skipped by searching for the next MAGIC; every valid frame
after it is still read, and the skipped bytes are counted. At the size cap the configured
policy applies: ``drop_oldest`` deletes the oldest whole segment, ``drop_newest`` refuses the
new message; either way the dropped events are counted.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"PLK\x01"
HEADER = struct.Struct(">4sIII")
SEGMENT_SUFFIX = ".seg"
CURSOR_FILE = "cursor"
POLICIES = ("drop_oldest", "drop_newest")


class SpoolError(OSError):
    """The spool folder cannot be used (locked by every slot, not writable)."""


@dataclass(frozen=True)
class SpooledMessage:
    topic: str
    key: bytes
    value: bytes
    events: int
    segment: int
    end_offset: int  # where the next frame starts: the cursor once this one is acknowledged


@dataclass
class SpoolStats:
    spooled_events: int = 0
    dropped_events: int = 0
    corrupt_bytes: int = 0


def encode_frame(topic: str, key: bytes, value: bytes, events: int) -> bytes:
    topic_bytes = topic.encode()
    body = struct.pack(">H", len(topic_bytes)) + topic_bytes + struct.pack(">H", len(key)) + key + value
    count = struct.pack(">I", events)
    return HEADER.pack(MAGIC, len(body), events, zlib.crc32(count + body)) + body


def decode_body(body: bytes) -> tuple[str, bytes, bytes]:
    (topic_length,) = struct.unpack_from(">H", body, 0)
    topic = body[2 : 2 + topic_length].decode()
    (key_length,) = struct.unpack_from(">H", body, 2 + topic_length)
    key_start = 4 + topic_length
    return topic, body[key_start : key_start + key_length], body[key_start + key_length :]


def read_frames(data: bytes, start: int, segment: int) -> Iterator[SpooledMessage | tuple[int, int]]:
    """Every valid frame from ``start``, and each damaged stretch as (offset, length)."""
    position = start
    while position < len(data):
        frame = _frame_at(data, position)
        if frame is None:
            resume = data.find(MAGIC, position + 1)
            resume = len(data) if resume < 0 else resume
            yield (position, resume - position)
            position = resume
            continue
        body, events, end = frame
        topic, key, value = decode_body(body)
        yield SpooledMessage(topic, key, value, events, segment, end)
        position = end


def _frame_at(data: bytes, position: int) -> tuple[bytes, int, int] | None:
    if position + HEADER.size > len(data):
        return None
    magic, length, events, crc = HEADER.unpack_from(data, position)
    end = position + HEADER.size + length
    if magic != MAGIC or end > len(data):
        return None
    body = data[position + HEADER.size : end]
    if zlib.crc32(struct.pack(">I", events) + body) != crc:
        return None
    try:
        decode_body(body)
    except (struct.error, UnicodeDecodeError):
        return None
    return body, events, end


class Spool:
    """One agent's spool folder. Thread-safe: the sender and Kafka's callback thread both write."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int, full_policy: str, fsync_interval_ms: int):
        if full_policy not in POLICIES:
            raise ValueError(f"agent.spool.full_policy is {full_policy!r}; expected one of {', '.join(POLICIES)}")
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.full_policy = full_policy
        self.fsync_interval_s = fsync_interval_ms / 1000
        self.stats = SpoolStats()
        self._lock = threading.RLock()
        directory.mkdir(parents=True, exist_ok=True)
        self._cursor = self._read_cursor()
        segments = self._segments()
        self._sizes = {number: (directory / _segment_name(number)).stat().st_size for number in segments}
        # never append to a segment an earlier process may have left half-written
        self._active = max(segments, default=self._cursor[0]) + 1
        self._fd: int | None = None
        self._last_sync = time.monotonic()
        self._dirty = False
        self._counted_damage: set[tuple[int, int]] = set()

    @property
    def pending_bytes(self) -> int:
        """Bytes spooled and not yet acknowledged."""
        with self._lock:
            return sum(self._sizes.values()) - (self._cursor[1] if self._cursor[0] in self._sizes else 0)

    def is_empty(self) -> bool:
        return self.pending_bytes == 0

    def append(self, topic: str, key: bytes, value: bytes, events: int) -> bool:
        """Spool one message; False when the cap refused it (drop_newest), counted as dropped."""
        frame = encode_frame(topic, key, value, events)
        with self._lock:
            if not self._make_room(len(frame)):
                self.stats.dropped_events += events
                return False
            if self._fd is None or self._sizes.get(self._active, 0) >= self.segment_bytes:
                self._roll()
            os.write(self._fd, frame)
            self._sizes[self._active] += len(frame)
            self.stats.spooled_events += events
            self._dirty = True
            self.sync(force=False)
            return True

    def sync(self, force: bool = True) -> None:
        """fsync the active segment if anything was written since the last one (and, unless forced, the interval passed)."""
        with self._lock:
            if self._fd is None or not self._dirty:
                return
            if force or time.monotonic() - self._last_sync >= self.fsync_interval_s:
                os.fsync(self._fd)
                self._dirty, self._last_sync = False, time.monotonic()

    def read(self, limit: int) -> list[SpooledMessage]:
        """Up to ``limit`` messages from the cursor on, oldest first; nothing is consumed until
        ``commit``. Damaged stretches are skipped and counted once; when nothing valid is left,
        the damaged rest is discarded so the spool counts as empty."""
        with self._lock:
            self.sync()
            messages: list[SpooledMessage] = []
            for number in sorted(n for n in self._sizes if n >= self._cursor[0]):
                start = self._cursor[1] if number == self._cursor[0] else 0
                for item in read_frames((self.directory / _segment_name(number)).read_bytes(), start, number):
                    if isinstance(item, SpooledMessage):
                        messages.append(item)
                        if len(messages) == limit:
                            return messages
                    elif (number, item[0]) not in self._counted_damage:
                        self._counted_damage.add((number, item[0]))
                        self.stats.corrupt_bytes += item[1]
            if not messages and self._sizes:
                self._discard_through(max(self._sizes), self._sizes[max(self._sizes)])
            return messages

    def commit(self, message: SpooledMessage) -> None:
        """Everything up to and including ``message`` reached Kafka: move the cursor past it."""
        with self._lock:
            self._discard_through(message.segment, message.end_offset)

    def _discard_through(self, segment: int, offset: int) -> None:
        self._cursor = (segment, offset)
        for number in [n for n in self._sizes
                       if n < segment or (n == segment and n != self._active and offset >= self._sizes[n])]:
            self._delete(number)
        self._write_cursor()

    def close(self) -> None:
        with self._lock:
            self.sync()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _make_room(self, needed: int) -> bool:
        while self.pending_bytes + needed > self.max_bytes:
            if self.full_policy == "drop_newest":
                return False
            oldest = min(self._sizes, default=None)
            if oldest is None:
                return needed <= self.max_bytes
            if oldest == self._active:
                self._roll()
            self.stats.dropped_events += self._events_in(oldest)
            self._discard_through(oldest + 1, 0)
        return True

    def _events_in(self, number: int) -> int:
        start = self._cursor[1] if number == self._cursor[0] else 0
        data = (self.directory / _segment_name(number)).read_bytes()
        return sum(item.events for item in read_frames(data, start, number) if isinstance(item, SpooledMessage))

    def _roll(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._active += 1
        path = self.directory / _segment_name(self._active)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._sizes.setdefault(self._active, path.stat().st_size)
        _fsync_directory(self.directory)

    def _delete(self, number: int) -> None:
        if number == self._active and self._fd is not None:
            os.close(self._fd)
            self._fd = None
        (self.directory / _segment_name(number)).unlink(missing_ok=True)
        self._sizes.pop(number, None)

    def _segments(self) -> list[int]:
        return sorted(int(path.stem) for path in self.directory.glob(f"*{SEGMENT_SUFFIX}") if path.stem.isdigit())

    def _read_cursor(self) -> tuple[int, int]:
        path = self.directory / CURSOR_FILE
        try:
            segment, offset = path.read_text().split()
            return int(segment), int(offset)
        except (FileNotFoundError, ValueError):
            return (min(self._segments(), default=0), 0)

    def _write_cursor(self) -> None:
        path = self.directory / CURSOR_FILE
        temporary = path.with_suffix(".tmp")
        with open(temporary, "w") as handle:
            handle.write(f"{self._cursor[0]} {self._cursor[1]}\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)


def claim_slot(root: Path) -> tuple[Path, int]:
    """The first free ``root/<n>`` folder, locked for this process's life (several processes of
    one service on one host each get their own; a restarted one takes over a free slot and
    replays what it holds). Returns the folder and the open lock's descriptor."""
    root.mkdir(parents=True, exist_ok=True)
    for slot in range(64):
        directory = root / str(slot)
        directory.mkdir(exist_ok=True)
        fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return directory, fd
        except BlockingIOError:
            os.close(fd)
    raise SpoolError(f"all 64 spool slots under {root} are locked by running agents")


def _segment_name(number: int) -> str:
    return f"{number:010d}{SEGMENT_SUFFIX}"


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
