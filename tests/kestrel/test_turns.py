"""New items are written once per turn of the event loop: one write for every `set` of the turn.

These tests drive the server's connections by hand, in one process, so that "the same turn" is
exact: each calls `data_received` on several connections before the loop runs again.
"""

from __future__ import annotations

import asyncio

import pytest

from lab.kestrel.config import FsyncPolicy, ServerConfig
from lab.kestrel.connection import ClientConnection
from lab.kestrel.journal import Journal
from lab.kestrel.records import OP_ADD
from lab.kestrel.server import KestrelServer


class RecordingTransport:
    """What a connection wrote, with no socket behind it."""

    def __init__(self):
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data

    def take(self) -> bytes:
        data, self.written = bytes(self.written), bytearray()
        return data

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def set_request(queue: str, data: bytes) -> bytes:
    return b"set %s 0 0 %d\r\n%s\r\n" % (queue.encode(), len(data), data)


def run_server(tmp_path, fsync: str, test) -> None:
    """Run `test(server, connect)` inside an event loop; `connect()` makes a connection."""

    async def main():
        server = KestrelServer(ServerConfig(data_dir=tmp_path, fsync=FsyncPolicy(fsync)))
        server.collection.load()

        def connect():
            connection = ClientConnection(server)
            transport = RecordingTransport()
            connection.connection_made(transport)
            return connection, transport

        try:
            await test(server, connect)
        finally:
            await server.collection.close()

    asyncio.run(main())


async def settle() -> None:
    """Let the loop run until nothing more is scheduled for now (writes, fsyncs, replies)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def reply_of(transport: RecordingTransport, timeout: float = 10, length: int = 1) -> bytes:
    """The connection's next reply (at least `length` bytes), waited for: a reply that waits for an
    fsync, or for a thread that removed a file, comes when that thread is done, however many turns
    of the loop that takes on a busy machine."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(transport.written) < length:
        assert asyncio.get_running_loop().time() < deadline, "no reply"
        await asyncio.sleep(0.005)
    return transport.take()


@pytest.fixture
def counted_writes(monkeypatch):
    """Every write to a journal, as (number of ADD records, bytes)."""
    writes: list[bytes] = []
    real_append = Journal.append

    def append(self, record: bytes) -> int:
        writes.append(record)
        return real_append(self, record)

    monkeypatch.setattr(Journal, "append", append)
    return writes


@pytest.mark.parametrize("fsync", ["never", "always"])
def test_the_sets_of_one_turn_share_one_write_and_are_answered_after_it(tmp_path, fsync, counted_writes):
    async def test(server, connect):
        setters = [connect() for _ in range(10)]
        reader, reader_out = connect()
        setters[0][0].data_received(set_request("q", b"first"))  # creates the queue
        assert await reply_of(setters[0][1]) == b"STORED\r\n"
        counted_writes.clear()

        for number, (connection, _) in enumerate(setters):
            connection.data_received(set_request("q", b"item %d" % number))
        reader.data_received(b"get q\r\nget q\r\n")  # the same turn: only `first` is in the queue
        assert all(transport.take() == b"" for _, transport in setters)  # nothing answered yet

        assert [await reply_of(transport) for _, transport in setters] == [b"STORED\r\n"] * 10
        expected = b"VALUE q 0 5\r\nfirst\r\nEND\r\nEND\r\n"
        assert await reply_of(reader_out, length=len(expected)) == expected
        adds = [record for record in counted_writes if record[0] == OP_ADD]
        assert len(adds) == 1  # ten items, one write
        assert server.collection.get("q").items == 10

    run_server(tmp_path, fsync, test)


def test_when_the_write_of_a_turn_fails_every_set_in_it_hears_so_and_nothing_is_stored(tmp_path, monkeypatch):
    real_append = Journal.append
    failing = {"on": False}

    def append(self, record: bytes) -> int:
        if failing["on"] and record[0] == OP_ADD:
            raise OSError(28, "No space left on device")
        return real_append(self, record)

    monkeypatch.setattr(Journal, "append", append)

    async def test(server, connect):
        setters = [connect() for _ in range(3)]
        setters[0][0].data_received(set_request("q", b"kept"))
        await settle()
        assert setters[0][1].take() == b"STORED\r\n"

        failing["on"] = True
        for number, (connection, _) in enumerate(setters):
            connection.data_received(set_request("q", b"lost %d" % number))
        await settle()
        replies = [transport.take() for _, transport in setters]
        assert all(reply == b"SERVER_ERROR [Errno 28] No space left on device\r\n" for reply in replies), replies
        assert server.collection.get("q").items == 1
        assert server.collection.total_items == 1

        failing["on"] = False  # room again: the same connections go on
        setters[1][0].data_received(set_request("q", b"later"))
        setters[2][0].data_received(b"get q\r\nget q\r\n")
        await settle()
        assert setters[1][1].take() == b"STORED\r\n"
        assert setters[2][1].take() == b"VALUE q 0 4\r\nkept\r\nEND\r\nEND\r\n"  # `later` came after

    run_server(tmp_path, "never", test)


@pytest.mark.parametrize("command, reply", [(b"delete q\r\n", b"DELETED\r\n"), (b"flush q\r\n", b"END\r\n")])
def test_a_set_still_waiting_for_its_write_comes_before_a_delete_or_flush_in_the_same_turn(
        tmp_path, command, reply):
    async def test(server, connect):
        (setter, setter_out), (other, other_out) = connect(), connect()
        setter.data_received(set_request("q", b"old"))
        assert await reply_of(setter_out) == b"STORED\r\n"

        setter.data_received(set_request("q", b"new"))
        other.data_received(command)
        await settle()
        assert await reply_of(setter_out) == b"STORED\r\n"  # it came first: stored, then dropped
        assert await reply_of(other_out) == reply
        other.data_received(b"get q\r\n")
        assert await reply_of(other_out) == b"END\r\n"

    run_server(tmp_path, "always", test)
