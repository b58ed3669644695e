"""Fuzzing: malformed requests, binary junk, bad lengths, half-sent commands, abrupt disconnects.

However bad the input, the server keeps running, another client's queue is untouched, and the
journal stays consistent with memory (a restart finds exactly the same queues).
"""

from __future__ import annotations

import logging
import random
import socket
import struct
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.kestrel.protocol import ClientError, parse_get_key, parse_set, split_line
from lab.kestrel.records import CorruptRecord, ReadWindow, decode_at
from lab.runtime.process import wait_until
from lab.testing.kestrel import RawClient

QUEUES = [b"f0", b"f1", b"f2", b"F0", b"f0+c", b"f1+c"]
OPTIONS = [b"open", b"close", b"abort", b"peek", b"t=0", b"t=5", b"t=20", b"t=x", b"", b"zzz"]
STORM_REQUESTS = 12_000  # with 1,500 + 1,500 parsed lines and 400 fragment runs: 15,400 cases
VICTIM_ITEMS = [b"victim-%03d" % n + bytes(range(n % 50)) for n in range(40)]


# -- the parsers on their own: any bytes in, a request or a ClientError out ------------------------


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=80))
def test_parsing_any_line_gives_a_request_or_a_client_error(line):
    command, args = split_line(line)
    assert command == command.lower()
    try:
        if args:
            request = parse_get_key(args[0])
            assert request.queue and "/" not in request.queue and "." not in request.queue
            assert not (request.peek and (request.open or request.close or request.abort))
    except ClientError as error:
        assert error.reason and error.close
    try:
        request = parse_set(args)
        assert 0 <= request.length < 2**31
    except ClientError as error:
        assert error.reason


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=200))
def test_decoding_any_bytes_gives_records_or_corrupt_record(tmp_path_factory, blob):
    path = tmp_path_factory.getbasetemp() / "fuzz-journal"
    path.write_bytes(blob)
    import os
    fd = os.open(path, os.O_RDONLY)
    try:
        reader, offset = ReadWindow(fd), 0
        while offset < len(blob):
            try:
                record, offset_after = decode_at(reader, offset, len(blob))
            except CorruptRecord:
                break
            assert offset < offset_after <= len(blob)
            offset = offset_after
    finally:
        os.close(fd)


# -- the server under a seeded storm of bad clients ----------------------------------------------


def random_request(rng: random.Random) -> bytes:
    queue = rng.choice(QUEUES)
    # Mostly well-formed requests, so that connections live long enough to interleave.
    kind = rng.choice([0, 0, 0, 0, 2, 2, 2, 3, 3, 4, 4, 8, 11, 11, 13, 13,
                       1, 5, 6, 7, 9, 10, 12])
    if kind == 0:  # a good set
        data = rng.randbytes(rng.randrange(0, 300))
        return b"set %s 0 0 %d\r\n%s\r\n" % (queue, len(data), data)
    if kind == 1:  # a set whose data does not match its length
        data = rng.randbytes(rng.randrange(0, 40))
        return b"set %s 0 0 %d\r\n%s\r\n" % (queue, max(0, len(data) + rng.choice([-2, -1, 1, 3])),
                                               data)
    if kind == 2:  # a get with random options
        options = rng.sample(OPTIONS, rng.randrange(0, 4))
        return b"get " + b"/".join([queue, *options]) + b"\r\n"
    if kind == 3:
        return b"get %s/open\r\n" % queue
    if kind == 4:
        return b"get %s/close/open\r\n" % queue
    if kind == 5:  # binary junk, maybe with line ends inside
        return rng.randbytes(rng.randrange(1, 120))
    if kind == 6:  # a junk line
        return rng.randbytes(rng.randrange(0, 30)).replace(b"\n", b"") + b"\r\n"
    if kind == 7:  # a huge or silly length
        return b"set %s 0 0 %s\r\n" % (queue, rng.choice(
            [b"99999999999999", b"-5", b"1e9", b"4294967296", b"%d" % rng.randrange(2**20, 2**24)]))
    if kind == 8:
        return rng.choice([b"stats\r\n", b"version\r\n", b"STATS\n", b"gets %s\r\n" % queue,
                           b"flush %s\r\n" % queue, b"delete %s\r\n" % queue, b"get\r\n",
                           b"delete\r\n", b"set\r\n", b"quit\r\n"])
    if kind == 9:  # a half-sent command: the connection will end before the rest arrives
        return rng.choice([b"set %s 0 0 100\r\nonly part" % queue, b"get %s/op" % queue,
                           b"set %s 0 0" % queue])
    if kind == 10:  # forbidden option combinations and bad names
        return rng.choice([b"get /open\r\n", b"get %s/peek/open\r\n" % queue,
                           b"get %s/abort/close\r\n" % queue, b"get ../etc\r\n",
                           b"get a.b\r\n", b"set x~y 0 0 1\r\nz\r\n"])
    if kind == 11:  # a set with noreply, good or bad
        data = rng.randbytes(rng.randrange(0, 20))
        return b"set %s 0 %d %d noreply\r\n%s\r\n" % (queue, rng.choice([0, 1, 1_000_000]),
                                                      len(data), data)
    if kind == 12:  # a long line
        return b"get " + b"q" * rng.randrange(1000, 5000) + b"\r\n"
    return b"get %s/peek\r\n" % queue


def close_abruptly(sock: socket.socket) -> None:
    """Close with a TCP reset, as a crashed client or a dropped network would."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def storm(port: int, rng: random.Random, requests: int) -> None:
    sent = 0
    while sent < requests:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for _ in range(rng.randrange(1, 12)):
                sock.sendall(random_request(rng))
                sent += 1
                if rng.random() < 0.1:  # sometimes wait a moment for a reply before going on
                    sock.settimeout(0.005)
                    try:
                        sock.recv(65536)
                    except (TimeoutError, socket.timeout):
                        pass
                    sock.settimeout(10)
        except OSError:
            pass  # the server closed on us after a CLIENT_ERROR: fine
        if rng.random() < 0.5:
            close_abruptly(sock)
        else:
            sock.close()


def queue_state(client: RawClient) -> dict[str, str]:
    return {name: value for name, value in client.stats().items()
            if name.startswith("queue_") and name.rsplit("_", 1)[-1] in ("items", "bytes")
            and "mem" not in name and "total" not in name and "expired" not in name}


def test_a_storm_of_bad_clients_breaks_nothing(start_server, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="lab.kestrel")
    data = tmp_path / "storm"
    server = start_server(data_dir=data, max_item_size=64 * 1024, max_open_reads=5,
                          journal_compact_bytes=8 * 1024)
    with RawClient(server.port) as victim, RawClient(server.port) as holder:
        for item in VICTIM_ITEMS:
            assert victim.set("victim", item) == b"STORED\r\n"
        held = [holder.get("victim/open"), holder.get("victim/open")]
        # While the storm blows, a well-behaved client keeps writing: every STORED must survive.
        storming = threading.Thread(target=storm, args=(server.port, random.Random(20100401), STORM_REQUESTS))
        storming.start()
        acknowledged = []
        while storming.is_alive():
            item = b"acked-%05d" % len(acknowledged)
            assert victim.set("acked", item) == b"STORED\r\n"
            acknowledged.append(item)
        storming.join()
        assert len(acknowledged) > 10
        wait_until(lambda: victim.stats()["curr_connections"] == "2", 20,
                   what="fuzz connections closed")
        # The other client's queue and open reads are untouched.
        stats = victim.stats()
        assert stats["queue_victim_items"] == str(len(VICTIM_ITEMS) - 2)
        assert stats["queue_victim_open_transactions"] == "2"
        assert [victim.get("victim/peek")] == [VICTIM_ITEMS[2]]
        assert "internal error" not in caplog.text
    assert held == VICTIM_ITEMS[:2]
    with RawClient(server.port) as client:
        # The holder is gone: its two open reads are back at the head.
        wait_until(lambda: client.stats()["curr_connections"] == "1", 10)
        before = queue_state(client)
        assert before["queue_victim_items"] == str(len(VICTIM_ITEMS))
    server.stop()
    # What the journals say is exactly what the server held in memory.
    again = start_server(data_dir=data, max_item_size=64 * 1024)
    with RawClient(again.port) as client:
        assert queue_state(client) == before
        assert [client.get("victim") for _ in VICTIM_ITEMS] == VICTIM_ITEMS
        assert [client.get("acked") for _ in range(len(acknowledged) + 1)] == acknowledged + [None]
    assert "cutting off" not in caplog.text and "ignored" not in caplog.text


fragments = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"\r\n", b"\n", b"get f0", b"get f0/open", b"/close", b"/peek", b"/t=3",
                     b"set f0 0 0 ", b"set f1 1 2 3", b"3", b"\r\nabc\r\n", b"noreply", b" ",
                     b"delete f0", b"flush f1", b"stats", b"gets", b"GET F0/abort"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(fragments, max_size=12), st.booleans())
def test_any_sequence_of_fragments_leaves_the_server_serving(server, chunks, abrupt):
    with RawClient(server.port) as control:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        try:
            sock.sendall(b"".join(chunks))
        except OSError:
            pass
        if abrupt:
            close_abruptly(sock)
        else:
            sock.close()
        # Whatever that client did, another one still gets its own items back, in order.
        assert control.set("control", b"one") == b"STORED\r\n"
        assert control.set("control", b"two") == b"STORED\r\n"
        assert control.get("control") == b"one"
        assert control.get("control") == b"two"
