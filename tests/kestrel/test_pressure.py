"""What the server bounds under pressure: a client that asks for more than it reads, a client that
vanishes mid-pipeline, a client that names queue after queue, and the folder of a new journal."""

from __future__ import annotations

import socket
import struct

import psutil
import pytest

from lab.kestrel import journal
from lab.runtime.kestrel_server import kestrel_process
from lab.runtime.process import wait_until
from lab.testing.kestrel import RawClient

MiB = 1024 * 1024
BIG = b"x" * MiB


def round_trips(client: RawClient, times: int = 3) -> None:
    """Requests on another connection, answered in turn: the server has read what came before."""
    for _ in range(times):
        assert client.request(b"version\r\n").startswith(b"VERSION")


def read_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = sock.recv_into(view[got:])
        assert n, f"the server closed the connection after {got} of {size} bytes"
        got += n
    return bytes(buffer)


def rss(process) -> int:
    return psutil.Process(process.pid).memory_info().rss


@pytest.fixture
def server(tmp_path):
    with kestrel_process(tmp_path / "data", "--fsync", "never") as server:
        yield server


def greedy_client(port: int, peeks: int) -> socket.socket:
    """Pipelines `peeks` requests for the 1 MiB item and reads nothing."""
    greedy = socket.create_connection(("127.0.0.1", port))
    greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    greedy.sendall(b"get big/peek\r\n" * peeks)
    return greedy


def test_a_client_that_reads_no_replies_costs_the_server_little(server):
    with RawClient(server.port) as other:
        assert other.set("big", BIG) == b"STORED\r\n"
        round_trips(other)
        before = rss(server)
        greedy = greedy_client(server.port, 400)  # 400 MiB of replies, if they were all built
        samples = []
        for _ in range(10):  # while the server answers others, it holds little for this one
            round_trips(other)
            samples.append(rss(server))
        grown = max(samples) - before
        assert grown < 32 * MiB, f"the server grew by {grown / MiB:.0f} MiB for a client that reads nothing"

        # The same client, reading now: every reply arrives, whole and in order (pipelining works).
        reply = b"VALUE big/peek 0 %d\r\n" % MiB + BIG + b"\r\nEND\r\n"
        greedy.settimeout(30)
        for n in range(400):
            assert read_exactly(greedy, len(reply)) == reply, f"reply {n}"
        greedy.close()


def test_a_client_asking_for_4000_mib_and_reading_nothing_does_not_take_the_server_down(server):
    with RawClient(server.port) as other:
        assert other.set("big", BIG) == b"STORED\r\n"
        before = rss(server)
        greedy = greedy_client(server.port, 4000)
        round_trips(other, 10)
        assert rss(server) - before < 32 * MiB
        greedy.close()
        round_trips(other)
        assert other.get("big/peek") == BIG  # and the item is still there


def test_requests_still_in_the_buffer_when_the_client_vanishes_are_not_answered(server):
    """A plain `get` answered after the client has gone would take an item no one receives."""
    with RawClient(server.port) as other:
        assert other.set("big", BIG) == b"STORED\r\n"
        assert other.set("tweets", b"the only one") == b"STORED\r\n"
        vanishing = greedy_client(server.port, 40)  # enough replies to fill every buffer on the way
        round_trips(other)
        vanishing.sendall(b"get tweets\r\n")  # read by the server while it waits for the reader
        round_trips(other)
        vanishing.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        vanishing.close()  # a reset: the client is gone at once
        round_trips(other)
        assert other.get("tweets") == b"the only one"


def test_a_server_wide_limit_on_queues_refuses_a_new_one_clearly(start_server, connect):
    server = start_server(max_queues=2)
    client = connect(server.port)
    assert client.set("one", b"1") == b"STORED\r\n"
    assert client.set("two", b"2") == b"STORED\r\n"
    assert client.set("three", b"3") == b"SERVER_ERROR too many queues (the limit is 2)\r\n"
    assert client.request(b"get four\r\n") == b"SERVER_ERROR too many queues (the limit is 2)\r\n"
    assert client.get("one") == b"1"  # the connection goes on, the queues that exist still serve
    assert sorted(path.name for path in server.config.data_dir.iterdir()) == ["one", "two"]


def test_journals_already_on_disk_all_load_whatever_the_limit(start_server, connect, tmp_path):
    data = tmp_path / "journals"
    first = start_server(data_dir=data)
    client = connect(first.port)
    for name in ("a", "b", "c"):
        assert client.set(name, name.encode()) == b"STORED\r\n"
    first.stop()
    second = start_server(data_dir=data, max_queues=1)
    client = connect(second.port)
    assert [client.get(name) for name in ("a", "b", "c")] == [b"a", b"b", b"c"]


@pytest.mark.parametrize("fsync, synced", [("always", True), ("never", False)])
def test_a_new_journal_is_followed_by_an_fsync_of_its_folder(start_server, connect, monkeypatch, fsync, synced):
    from lab.kestrel.config import FsyncPolicy

    folders = []
    real = journal.fsync_dir
    monkeypatch.setattr(journal, "fsync_dir", lambda path: (folders.append(path), real(path)))
    server = start_server(fsync=FsyncPolicy(fsync))
    assert connect(server.port).set("fresh", b"first item") == b"STORED\r\n"
    # The reply came after the folder was synced: the new file's name survives a power cut.
    assert (server.config.data_dir in folders) is synced


@pytest.fixture
def failing_rewrites(monkeypatch):
    """Every journal rewrite fails as on a full disk, until `failing_rewrites.stop()`."""
    from lab.kestrel import queue as queue_module
    from lab.kestrel.journal import Journal

    real = Journal.rewrite
    state = {"failing": True, "attempts": 0}

    async def rewrite(self, records):
        state["attempts"] += 1
        if state["failing"]:
            raise OSError(28, "No space left on device")
        return await real(self, records)

    monkeypatch.setattr(Journal, "rewrite", rewrite)
    monkeypatch.setattr(queue_module, "COMPACT_RETRY_SECONDS", 0.0)
    state["stop"] = lambda: state.update(failing=False)
    return state


def test_a_compaction_that_fails_after_a_get_loses_no_item(start_server, connect, failing_rewrites):
    server = start_server(journal_compact_bytes=1)  # every emptied queue wants a rewrite
    client = connect(server.port)
    assert client.set("q", b"first") == b"STORED\r\n"
    assert client.set("q", b"second") == b"STORED\r\n"
    assert client.get("q") == b"first"
    assert client.get("q") == b"second"  # answered; the queue is empty, and its rewrite fails
    wait_until(lambda: failing_rewrites["attempts"] >= 1, timeout=10, what="a compaction attempt")
    assert client.get("q") is None

    failing_rewrites["stop"]()  # the disk has room again: the next chance compacts
    assert client.set("q", b"third") == b"STORED\r\n"
    assert client.get("q") == b"third"
    journal_file = server.config.data_dir / "q"
    wait_until(lambda: journal_file.stat().st_size == 0, timeout=10,
               what="compaction once the disk has room")


def test_a_flush_that_cannot_be_written_drops_nothing(start_server, connect, monkeypatch):
    from lab.kestrel.journal import Journal
    from lab.kestrel.records import REMOVE_RECORD

    real_append = Journal.append

    def append(self, record):
        if record.startswith(REMOVE_RECORD * 2):  # a flush's REMOVE records, as on a full disk
            raise OSError(28, "No space left on device")
        return real_append(self, record)

    monkeypatch.setattr(Journal, "append", append)
    server = start_server()
    client = connect(server.port)
    assert client.set("q", b"kept") == b"STORED\r\n"
    assert client.set("q", b"kept too") == b"STORED\r\n"
    assert client.request(b"flush q\r\n").startswith(b"SERVER_ERROR")
    assert client.stats()["queue_q_items"] == "2"
    assert [client.get("q"), client.get("q")] == [b"kept", b"kept too"]


def test_after_a_failed_compaction_a_restart_finds_what_the_clients_were_told(start_server, connect,
                                                                               failing_rewrites, tmp_path):
    data = tmp_path / "journal"
    first = start_server(data_dir=data, journal_compact_bytes=1)
    client = connect(first.port)
    assert client.set("q", b"taken") == b"STORED\r\n"
    assert client.get("q") == b"taken"  # the queue is empty: a rewrite is tried, and fails
    wait_until(lambda: failing_rewrites["attempts"] >= 1, timeout=10, what="a compaction attempt")
    assert client.set("q", b"later") == b"STORED\r\n"  # appended to the journal as it was
    first.stop()
    failing_rewrites["stop"]()
    again = connect(start_server(data_dir=data).port)
    assert again.get("q") == b"later"  # and not `taken` a second time
    assert again.get("q") is None
