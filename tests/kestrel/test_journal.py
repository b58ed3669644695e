"""The journal file: record layout, replay, a damaged tail, group commit, compaction."""

from __future__ import annotations

import asyncio
import os
import struct
import threading
import zlib

import pytest

from lab.kestrel import journal as journal_module
from lab.kestrel import records as records_module
from lab.kestrel.config import FsyncPolicy, QueueLimits
from lab.kestrel.items import Fetch
from lab.kestrel.journal import Journal
from lab.kestrel.queue import PersistentQueue
from lab.kestrel.records import (
    OP_ADD,
    OP_CONFIRM_REMOVE,
    OP_REMOVE_TENTATIVE,
    REMOVE_RECORD,
    encode_add,
    encode_xid,
)
from lab.runtime.process import wait_until
from lab.testing.kestrel import RawClient


def open_queue(path, name="q", **limits) -> PersistentQueue:
    return PersistentQueue(name, path, QueueLimits(**limits), FsyncPolicy("never"),
                           max_memory=1 << 30, journal_compact_bytes=1 << 30)


def drain(queue: PersistentQueue) -> list[bytes]:
    items = []
    while (item := queue.fetch(1, Fetch.TAKE)) is not None:
        items.append(item.data)
    return items


def test_an_add_record_is_kestrels_layout_plus_a_crc():
    record = encode_add(1000, 2000, b"hi")
    head = struct.pack("<BIqq", 2, 18, 1000, 2000) + b"hi"
    assert record == head + struct.pack("<I", zlib.crc32(head))
    assert encode_xid(OP_REMOVE_TENTATIVE, 7)[:5] == b"\x09\x07\x00\x00\x00"
    assert REMOVE_RECORD[:1] == b"\x01" and len(REMOVE_RECORD) == 5


def test_replay_restores_items_and_open_reads_go_back_to_the_head(tmp_path):
    path = tmp_path / "q"
    path.write_bytes(b"".join([
        encode_add(1, 0, b"a"), encode_add(2, 0, b"b"), encode_add(3, 0, b"c"),
        encode_add(4, 0, b"d"),
        REMOVE_RECORD,  # "a" taken
        encode_xid(OP_REMOVE_TENTATIVE, 1),  # "b" open...
        encode_xid(OP_REMOVE_TENTATIVE, 2),  # "c" open...
        encode_xid(OP_CONFIRM_REMOVE, 1),  # "b" done
        encode_xid(OP_REMOVE_TENTATIVE, 3),  # "d" open at the crash
    ]))
    queue = open_queue(tmp_path)
    assert queue.open_reads == {}
    assert queue.next_xid == 4
    assert drain(queue) == [b"c", b"d"]


def test_replay_after_a_clean_rollback_is_idempotent(tmp_path):
    path = tmp_path / "q"
    path.write_bytes(encode_add(1, 0, b"a") + encode_add(2, 0, b"b")
                     + encode_xid(OP_REMOVE_TENTATIVE, 1))
    first = open_queue(tmp_path)
    assert first.items == 2
    first.fetch(1, Fetch.TAKE)  # takes "a", which the rollback put back at the head
    again = open_queue(tmp_path)
    assert drain(again) == [b"b"]


@pytest.mark.parametrize("cut", range(1, 30))
def test_a_journal_cut_anywhere_in_its_last_record_keeps_every_earlier_record(tmp_path, cut,
                                                                              caplog):
    good = encode_add(1, 0, b"first") + encode_add(2, 0, b"second")
    last = encode_add(3, 0, b"third-item")
    (tmp_path / "q").write_bytes(good + last[:len(last) - cut] if cut < len(last) else good)
    queue = open_queue(tmp_path)
    assert drain(queue) == [b"first", b"second"]
    if cut < len(last):
        assert "cutting off" in caplog.text
    assert (tmp_path / "q").stat().st_size <= len(good) + 5 * 2  # the bad tail is gone


@pytest.mark.parametrize("garbage", [b"\x00", b"\xff" * 3, b"\x02\xff\xff\xff\x7f" + b"x" * 40,
                                     os.urandom(200), encode_add(4, 0, b"flipped")[:-1] + b"?"])
def test_garbage_after_the_last_good_record_is_cut_off(tmp_path, garbage, caplog):
    good = encode_add(1, 0, b"kept")
    (tmp_path / "q").write_bytes(good + garbage)
    queue = open_queue(tmp_path)
    assert "cutting off" in caplog.text
    assert drain(queue) == [b"kept"]


def test_a_corrupt_record_in_the_middle_cuts_the_journal_there(tmp_path, caplog):
    records = [encode_add(n, 0, b"item%d" % n) for n in range(4)]
    damaged = bytearray(records[2])
    damaged[-6] ^= 0x40  # one flipped bit in the data of the third item
    (tmp_path / "q").write_bytes(records[0] + records[1] + bytes(damaged) + records[3])
    queue = open_queue(tmp_path)
    assert "checksum mismatch" in caplog.text
    assert drain(queue) == [b"item0", b"item1"]


def test_writers_share_fsyncs_and_each_waits_for_the_one_covering_its_record(tmp_path,
                                                                            monkeypatch):
    """Group commit: 200 concurrent writers, a slow disk, a handful of fsyncs."""
    synced_sizes = []
    real_fsync = os.fsync

    def slow_fsync(fd):
        size = os.fstat(fd).st_size  # what this fsync makes durable
        threading.Event().wait(0.01)
        real_fsync(fd)
        synced_sizes.append(size)

    monkeypatch.setattr(journal_module, "sync_file", slow_fsync)

    async def scenario():
        journal = Journal(tmp_path / "q", FsyncPolicy("always"))
        violations = []

        async def writer(number):
            journal.append(encode_add(number, 0, b"x" * 100))
            end = journal.size
            await journal.wait_durable()
            if not synced_sizes or max(synced_sizes) < end:
                violations.append(number)  # acknowledged before its record was on disk

        tasks = []
        for number in range(200):
            tasks.append(asyncio.create_task(writer(number)))
            if number % 20 == 0:
                await asyncio.sleep(0.003)  # writers keep arriving while fsyncs run
        await asyncio.gather(*tasks)
        await journal.close()
        return violations

    violations = asyncio.run(scenario())
    assert violations == []
    assert 2 <= len(synced_sizes) <= 30  # far fewer fsyncs than the 200 writes


def test_fsync_always_answers_stored_only_after_the_fsync(start_server, monkeypatch):
    disk_done = threading.Event()
    real_fsync = os.fsync

    def held_fsync(fd):
        disk_done.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(journal_module, "sync_file", held_fsync)
    server = start_server()
    with RawClient(server.port) as client:
        client.sock.settimeout(0.3)
        client.send(b"set q 0 0 2\r\nhi\r\n")
        with pytest.raises(TimeoutError):
            client.line()  # no STORED while the fsync has not returned
        disk_done.set()
        client.sock.settimeout(10)
        assert client.line() == b"STORED\r\n"


def test_compaction_rewrites_the_journal_when_the_queue_is_empty(start_server, tmp_path):
    data = tmp_path / "c"
    server = start_server(data_dir=data, journal_compact_bytes=4096)
    with RawClient(server.port) as client:
        for n in range(3):
            client.set("q", b"%04d" % n + b"." * 2000)
        client.get("q")
        client.get("q")
        # Not yet: the file (6 KiB) is under 4x its one live item.
        assert int(client.stats()["queue_q_logsize"]) > 6000
        client.get("q")  # now empty: rewritten, in a worker thread
        wait_until(lambda: client.stats()["queue_q_logsize"] == "0", timeout=10, what="compaction")
        assert (data / "q").stat().st_size == 0
        client.set("q", b"after")
    server.stop()
    again = start_server(data_dir=data)
    with RawClient(again.port) as client:
        assert client.get("q") == b"after"
        assert client.get("q") is None


def test_compaction_keeps_live_items_and_open_reads(start_server, tmp_path):
    data = tmp_path / "c"
    server = start_server(data_dir=data, journal_compact_bytes=4096)
    items = [b"%04d" % n + b"." * 500 for n in range(30)]
    with RawClient(server.port) as holder, RawClient(server.port) as worker:
        for item in items:
            worker.set("q", item)
        assert holder.get("q/open") == items[0]  # stays open through the compactions
        for _ in range(25):
            worker.get("q/close/open")
        worker.get("q/close")  # 25 done: the journal is now mostly dead
        stats = worker.stats()
        assert (stats["queue_q_items"], stats["queue_q_open_transactions"]) == ("4", "1")
        # Uncompacted it would hold 30 ADD records (over 15,700 bytes); compaction keeps it
        # under 4x what the 5 live items need (1 open + 4 waiting: 2,654 bytes).
        wait_until(lambda: int(worker.stats()["queue_q_logsize"]) <= 4 * 2654, timeout=10,
                   what="compaction")
        server.stop()  # the open read is rolled back at the stop
    again = start_server(data_dir=data)
    with RawClient(again.port) as client:
        got = [client.get("q") for _ in range(6)]
    assert got == [items[0]] + items[26:] + [None]


def test_a_temp_file_left_by_an_interrupted_compaction_is_ignored_and_removed(tmp_path):
    (tmp_path / "q").write_bytes(encode_add(1, 0, b"real"))
    (tmp_path / "q~~").write_bytes(encode_add(1, 0, b"half-written"))
    (tmp_path / "q~5eed1e55~~").write_bytes(encode_add(1, 0, b"half-written too"))
    from lab.kestrel.collection import QueueCollection
    from lab.kestrel.config import ServerConfig
    collection = QueueCollection(ServerConfig(data_dir=tmp_path))
    collection.load()
    assert not (tmp_path / "q~~").exists() and not (tmp_path / "q~5eed1e55~~").exists()
    assert list(collection.queues) == ["q"]
    assert drain(collection.queues["q"]) == [b"real"]


def test_every_add_record_carries_the_time_and_expiry(tmp_path):
    queue = open_queue(tmp_path)

    async def add_and_wait_for_the_write():
        written = asyncio.get_running_loop().create_future()
        assert queue.add(b"x", 1234, 5678, written.set_result)
        assert await written is None

    asyncio.run(add_and_wait_for_the_write())
    reader = records_module.ReadWindow(os.open(tmp_path / "q", os.O_RDONLY))
    record, _ = records_module.decode_at(reader, 0, (tmp_path / "q").stat().st_size)
    assert (record.op, record.add_time, record.expiry, record.data) == (OP_ADD, 1234, 5678, b"x")
    os.close(reader.fd)
