"""Limits: item size, full queues, connections, idle clients, memory (read-behind)."""

from __future__ import annotations

import pytest

from lab.kestrel import cli as kestrel_cli
from lab.kestrel.config import QueueLimits, queue_limits_override
from lab.runtime.process import wait_until
from lab.testing.kestrel import RawClient


def test_an_item_over_max_item_size_is_not_stored_and_the_connection_goes_on(start_server,
                                                                           connect):
    server = start_server(max_item_size=1000)
    client = connect(server.port)
    assert client.set("q", b"x" * 1001) == b"NOT_STORED\r\n"
    assert client.set("q", b"x" * 1000) == b"STORED\r\n"
    assert client.get("q") == b"x" * 1000
    assert client.get("q") is None


def test_a_huge_item_is_read_past_in_pieces_and_refused(start_server, connect):
    server = start_server(max_item_size=1024)
    client = connect(server.port)
    size = 8 * 1024 * 1024  # far more than the server buffers
    client.send(b"set q 0 0 %d\r\n" % size)
    chunk = b"y" * 65536
    for _ in range(size // len(chunk)):
        client.send(chunk)
    client.send(b"\r\n")
    assert client.line() == b"NOT_STORED\r\n"
    assert client.request(b"version\r\n").startswith(b"VERSION")


def test_a_full_queue_refuses_new_items(start_server, connect):
    server = start_server(max_items=2)
    client = connect(server.port)
    assert [client.set("q", d) for d in (b"1", b"2", b"3")] == [
        b"STORED\r\n", b"STORED\r\n", b"NOT_STORED\r\n"]
    assert [client.get("q"), client.get("q"), client.get("q")] == [b"1", b"2", None]


def test_max_size_limits_the_bytes_in_a_queue(start_server, connect):
    server = start_server(max_size=10)
    client = connect(server.port)
    assert client.set("q", b"123456") == b"STORED\r\n"
    assert client.set("q", b"12345") == b"NOT_STORED\r\n"
    assert client.set("q", b"1234") == b"STORED\r\n"


def test_discard_old_when_full_drops_the_oldest_items(start_server, connect):
    server = start_server(max_items=2, discard_old_when_full=True)
    client = connect(server.port)
    for data in (b"1", b"2", b"3", b"4"):
        assert client.set("q", data) == b"STORED\r\n"
    assert [client.get("q"), client.get("q"), client.get("q")] == [b"3", b"4", None]
    assert client.stats()["queue_q_discarded"] == "2"


def test_one_queue_can_have_its_own_limits(start_server, connect):
    """`--queue tweets:max_items=2,max_item_size=2KiB`: tweets (and its fanout copies) get those;
    every other queue keeps the server's."""
    defaults = QueueLimits(max_item_size=1000)
    name, own = queue_limits_override("tweets:max_items=2,max_item_size=2KiB", defaults)
    server = start_server(max_item_size=1000, queue_limits={name: own})
    client = connect(server.port)
    assert client.set("tweets+audit", b"") == b"STORED\r\n"  # the fanout copy exists from now on
    assert [client.set("tweets", d) for d in (b"1", b"2", b"3")] == [
        b"STORED\r\n", b"STORED\r\n", b"NOT_STORED\r\n"]
    assert client.get("tweets+audit") == b""
    assert client.get("tweets+audit") == b"1"
    assert [client.set("other", d) for d in (b"1", b"2", b"3")] == [b"STORED\r\n"] * 3
    assert client.set("tweets_failed", b"x" * 1500) == b"NOT_STORED\r\n"  # not tweets: 1000 bytes
    assert client.get("tweets") == b"1"
    assert client.set("tweets", b"x" * 1500) == b"STORED\r\n"  # its own limit: 2 KiB


@pytest.mark.parametrize("text, message", [
    ("tweets", "expected NAME:KEY=VALUE"),
    ("tweets:max_itemz=3", "unknown queue limit 'max_itemz=3'"),
    ("tweets:max_items=-1", "max_items: expected a positive value"),
    ("tweets:max_size=lots", "max_size: not a size in bytes"),
    ("tweets:discard_old_when_full=maybe", "expected true or false"),
])
def test_a_malformed_queue_limit_is_refused_with_a_clear_error(text, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        kestrel_cli.main(["--queue", text, "--port", "0"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_too_many_connections_are_refused_cleanly(start_server):
    server = start_server(max_connections=2)
    with RawClient(server.port) as first, RawClient(server.port) as second:
        assert first.request(b"version\r\n").startswith(b"VERSION")
        assert second.request(b"version\r\n").startswith(b"VERSION")
        with RawClient(server.port) as third:
            assert third.line() == b"SERVER_ERROR too many connections\r\n"
            assert third.closed_by_server()
        assert first.stats()["curr_connections"] == "2"
    # Once a slot is free again, a new client gets in.
    wait_until(lambda: server.call(lambda: len(server.server.connections)) == 0, 5)
    with RawClient(server.port) as fourth:
        assert fourth.request(b"version\r\n").startswith(b"VERSION")


def test_an_idle_client_is_disconnected_and_its_open_reads_rolled_back(start_server):
    server = start_server(idle_timeout=0.3)
    with RawClient(server.port) as idle:
        idle.set("q", b"job")
        assert idle.get("q/open") == b"job"
        assert idle.closed_by_server()  # returns once the server closed it
    with RawClient(server.port) as other:
        assert other.get("q") == b"job"


def test_a_client_waiting_in_a_get_is_not_idle(start_server):
    server = start_server(idle_timeout=0.2)
    with RawClient(server.port) as waiting, RawClient(server.port) as probe:
        waiting.send(b"get q/t=20000\r\n")
        assert probe.closed_by_server()  # the idle probe is gone: the timeout has passed
        with RawClient(server.port) as producer:
            producer.set("q", b"finally")
        assert waiting.read_until(b"END\r\n") == b"VALUE q/t=20000 0 7\r\nfinally\r\nEND\r\n"


def test_memory_stays_bounded_with_a_backlog_many_times_max_memory(start_server, connect):
    max_memory = 64 * 1024
    server = start_server(max_memory=max_memory)
    client = connect(server.port)
    items = [b"%06d" % n + b"." * 1018 for n in range(400)]  # 400 KiB: 6x max_memory
    client.send(b"".join(b"set q 0 0 %d\r\n%s\r\n" % (len(i), i) for i in items))
    assert client.recv_exact(8 * len(items)) == b"STORED\r\n" * len(items)
    stats = client.stats()
    assert int(stats["queue_q_mem_bytes"]) <= max_memory
    assert int(stats["queue_q_mem_items"]) < len(items) // 5
    assert (stats["queue_q_items"], stats["queue_q_bytes"]) == ("400", str(400 * 1024))
    got = []
    for number, _ in enumerate(items):
        got.append(client.get("q"))
        if number % 50 == 0:
            assert int(client.stats()["queue_q_mem_bytes"]) <= max_memory
    assert got == items
    assert client.get("q") is None


def test_read_behind_survives_a_restart_in_order(start_server, tmp_path):
    data = tmp_path / "rb"
    items = [b"%06d" % n + b"-" * 500 for n in range(300)]
    first = start_server(data_dir=data, max_memory=16 * 1024)
    with RawClient(first.port) as client:
        for item in items:
            client.set("q", item)
        assert [client.get("q/open") for _ in range(5)] == items[:5]  # open at the stop
        assert [client.get("q/close") for _ in range(1)] == [None]  # acks items[0]
        first.stop()
    second = start_server(data_dir=data, max_memory=16 * 1024)
    with RawClient(second.port) as client:
        stats = client.stats()
        # The head holds max_memory, plus the 4 open reads given back to it at start-up.
        assert int(stats["queue_q_mem_bytes"]) <= 16 * 1024 + 4 * 506
        assert int(stats["queue_q_mem_items"]) < 50
        assert stats["queue_q_items"] == "299"
        assert [client.get("q") for _ in range(299)] == items[1:]


def test_the_listen_address_defaults_to_localhost_only():
    from lab.kestrel.cli import build_parser
    assert build_parser().parse_args([]).host == "127.0.0.1"
