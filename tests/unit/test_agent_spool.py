"""The agent's spool on its own: order, recovery from damage, the cap, the cursor across restarts."""

from __future__ import annotations

import os

import pytest

from perflake.agent.spool import MAGIC, Spool, claim_slot


def open_spool(directory, max_bytes=10_000_000, segment_bytes=1_000_000, policy="drop_oldest") -> Spool:
    return Spool(directory, max_bytes, segment_bytes, policy, fsync_interval_ms=0)


def fill(spool: Spool, count: int, events_each: int = 1, start: int = 0) -> None:
    for number in range(start, start + count):
        spool.append("perflake.metrics.v1", b"agent-key", f"message-{number:05d}".encode(), events_each)


def drain(spool: Spool) -> list[bytes]:
    values = []
    while chunk := spool.read(7):
        values += [message.value for message in chunk]
        spool.commit(chunk[-1])
    return values


def test_messages_come_back_in_order_with_topic_key_and_count(tmp_path):
    spool = open_spool(tmp_path)
    fill(spool, 3, events_each=5)
    [first, *_] = spool.read(10)
    assert (first.topic, first.key, first.value, first.events) == ("perflake.metrics.v1", b"agent-key", b"message-00000", 5)
    assert drain(spool) == [f"message-{n:05d}".encode() for n in range(3)]
    assert spool.is_empty()


def test_reading_does_not_consume_until_commit(tmp_path):
    spool = open_spool(tmp_path)
    fill(spool, 4)
    assert [m.value for m in spool.read(2)] == [b"message-00000", b"message-00001"]
    assert [m.value for m in spool.read(2)] == [b"message-00000", b"message-00001"]  # not acknowledged: read again
    spool.commit(spool.read(2)[-1])
    assert [m.value for m in spool.read(10)] == [b"message-00002", b"message-00003"]


def test_a_restarted_spool_resumes_at_the_cursor_across_segments(tmp_path):
    spool = open_spool(tmp_path, segment_bytes=100)  # a few frames per segment
    fill(spool, 20)
    spool.commit(spool.read(5)[-1])
    spool.close()
    again = open_spool(tmp_path, segment_bytes=100)
    fill(again, 2, start=20)  # goes to a new segment, after the old ones
    assert drain(again) == [f"message-{n:05d}".encode() for n in range(5, 22)]
    assert len(list(tmp_path.glob("*.seg"))) <= 1  # acknowledged segments are deleted


def test_damage_in_the_middle_and_a_torn_tail_lose_only_the_damaged_frames(tmp_path):
    spool = open_spool(tmp_path)
    fill(spool, 10)
    spool.close()
    [segment] = tmp_path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    frames = [i for i in range(len(data)) if data[i : i + 4] == MAGIC]
    data[frames[4] - 2] ^= 0x01  # a flipped bit in frame 3's value: its CRC fails
    data[frames[6] : frames[6] + 4] = b"JUNK"  # frame 6's header is gone
    data += MAGIC + b"\x00\x00\x01"  # a crash in the middle of writing a frame
    segment.write_bytes(bytes(data))
    again = open_spool(tmp_path)
    assert drain(again) == [f"message-{n:05d}".encode() for n in range(10) if n not in (3, 6)]
    frame_size = frames[1] - frames[0]
    assert again.stats.corrupt_bytes == 2 * frame_size + 7
    assert again.is_empty()


def test_a_spool_of_nothing_but_damage_counts_as_empty(tmp_path):
    (tmp_path / "0000000001.seg").write_bytes(b"\x00garbage" * 10)
    spool = open_spool(tmp_path)
    assert spool.read(5) == [] and spool.is_empty() and spool.stats.corrupt_bytes == 80


def test_drop_oldest_at_the_cap_drops_whole_old_segments_and_counts_their_events(tmp_path):
    spool = open_spool(tmp_path, max_bytes=1000, segment_bytes=200)
    fill(spool, 60, events_each=3)
    kept = drain(spool)
    assert kept == [f"message-{n:05d}".encode() for n in range(60 - len(kept), 60)]  # the newest survive, in order
    assert spool.stats.dropped_events == 3 * (60 - len(kept)) > 0
    assert spool.stats.spooled_events == 3 * 60


def test_drop_newest_at_the_cap_refuses_new_messages_and_counts_them(tmp_path):
    spool = open_spool(tmp_path, max_bytes=1000, segment_bytes=200, policy="drop_newest")
    accepted = [spool.append("t", b"k", f"message-{n:05d}".encode(), 2) for n in range(60)]
    kept = drain(spool)
    assert kept == [f"message-{n:05d}".encode() for n in range(len(kept))]  # the oldest survive
    assert accepted.count(False) == 60 - len(kept) > 0
    assert spool.stats.dropped_events == 2 * (60 - len(kept))


def test_an_unknown_policy_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="full_policy is 'keep_all'; expected one of drop_oldest, drop_newest"):
        open_spool(tmp_path, policy="keep_all")


def test_each_process_gets_its_own_slot(tmp_path):
    first, first_lock = claim_slot(tmp_path)
    second, second_lock = claim_slot(tmp_path)
    assert (first.name, second.name) == ("0", "1")
    os.close(first_lock)
    again, again_lock = claim_slot(tmp_path)
    assert again.name == "0"  # a restarted process takes the freed slot and replays it
    for fd in (second_lock, again_lock):
        os.close(fd)
