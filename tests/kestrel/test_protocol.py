"""The Kestrel memcache protocol over a raw socket: exact bytes, one test per rule."""

from __future__ import annotations

import socket
import time

import pytest

from lab.runtime.process import wait_until

VERSION_REPLY = b"VERSION 2.4.1-workbook\r\n"


def value(key: bytes, data: bytes) -> bytes:
    return b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(data), data)


def queue_stat(client, queue: str, key: str) -> int:
    """A per-queue stat; -1 while the queue does not exist (yet)."""
    return int(client.stats().get(f"queue_{queue}_{key}", -1))


# -- framing -------------------------------------------------------------------------------------


def test_a_bare_lf_ends_a_request_line(client):
    assert client.request(b"version\n") == VERSION_REPLY


def test_the_command_word_is_case_insensitive(client):
    assert client.request(b"SET q 0 0 2\r\nhi\r\n") == b"STORED\r\n"
    client.send(b"GeT q\r\n")
    assert client.recv_exact(len(value(b"q", b"hi"))) == value(b"q", b"hi")


def test_queue_names_keep_their_case(client):
    client.set("Jobs", b"x")
    assert client.request(b"get jobs\r\n") == b"END\r\n"
    assert client.get("Jobs") == b"x"


def test_pipelined_requests_are_answered_in_request_order(client):
    client.send(b"set q 0 0 1\r\na\r\nset q 0 0 1\r\nb\r\nget q\r\nversion\r\nget q\r\nget q\r\n")
    expected = (b"STORED\r\nSTORED\r\n" + value(b"q", b"a") + VERSION_REPLY
                + value(b"q", b"b") + b"END\r\n")
    assert client.recv_exact(len(expected)) == expected


def test_items_are_opaque_bytes_including_crlf_and_empty(client):
    items = [b"", b"\r\n", b"line1\r\nline2\n", bytes(range(256))]
    for item in items:
        assert client.set("q", item) == b"STORED\r\n"
    assert [client.get("q") for _ in items] == items
    assert client.get("q") is None


def test_set_with_a_bad_data_chunk_replies_client_error_stores_nothing_and_closes(connect):
    client = connect()
    client.send(b"set q 0 0 3\r\nabcdef\r\n")
    assert client.line() == b"CLIENT_ERROR bad data chunk\r\n"
    assert client.closed_by_server() and client.pending == b""
    other = connect()
    assert other.request(b"get q\r\n") == b"END\r\n"
    assert queue_stat(other, "q", "total_items") == 0


def test_set_noreply_sends_no_reply(client):
    client.send(b"set q 0 0 3 noreply\r\nabc\r\nversion\r\n")
    assert client.line() == VERSION_REPLY  # the first thing back is the version: no STORED
    assert client.get("q") == b"abc"


def test_delete_noreply_sends_no_reply(client):
    client.set("q", b"x")
    client.send(b"delete q noreply\r\nversion\r\n")
    assert client.line() == VERSION_REPLY
    assert client.get("q") is None


def test_set_missing_arguments_is_a_client_error_and_the_connection_stays(client):
    assert client.request(b"set q 0 0\r\n") == b"CLIENT_ERROR set needs <queue> <flags> <exptime> <bytes>\r\n"
    assert client.request(b"version\r\n") == VERSION_REPLY


@pytest.mark.parametrize("line", [b"set q 0 0 abc", b"set q 0 0 -1", b"set q x 0 1",
                                  b"set q 0 0 99999999999"])
def test_set_with_a_malformed_number_is_a_client_error_that_closes(client, line):
    assert client.request(line + b"\r\n") == b"CLIENT_ERROR bad command line format\r\n"
    assert client.closed_by_server() and client.pending == b""


# -- commands and exact replies ------------------------------------------------------------------


def test_flags_are_not_stored_value_always_says_0(client):
    client.send(b"set q 42 0 2\r\nhi\r\n")
    assert client.line() == b"STORED\r\n"
    assert client.request(b"get q\r\n", b"END\r\n") == value(b"q", b"hi")


def test_gets_is_the_same_as_get(client):
    client.set("q", b"hi")
    assert client.request(b"gets q\r\n", b"END\r\n") == value(b"q", b"hi")


def test_only_the_first_key_of_a_get_counts(client):
    client.set("a", b"1")
    client.set("b", b"2")
    assert client.request(b"get a b\r\n", b"END\r\n") == value(b"a", b"1")
    assert client.get("b") == b"2"


def test_get_on_an_empty_queue_replies_end(client):
    assert client.request(b"get nothing\r\n") == b"END\r\n"


def test_delete_replies_deleted_even_for_a_queue_that_never_existed(client):
    assert client.request(b"delete never_was\r\n") == b"DELETED\r\n"
    assert "queue_never_was_items" not in client.stats()


def test_delete_drops_the_items_and_the_journal(client, server):
    client.set("q", b"x")
    journal = server.config.data_dir / "q"
    assert journal.exists()
    assert client.request(b"delete q\r\n") == b"DELETED\r\n"
    assert not journal.exists()
    assert "queue_q_items" not in client.stats()
    assert client.get("q") is None


def test_flush_removes_every_item_and_keeps_the_queue(client):
    for data in (b"a", b"b"):
        client.set("q", data)
    assert client.request(b"flush q\r\n") == b"END\r\n"
    stats = client.stats()
    assert stats["queue_q_items"] == "0"
    assert client.get("q") is None


def test_flush_all_replies_flushed_all_queues(client):
    client.set("a", b"1")
    client.set("b", b"2")
    assert client.request(b"flush_all\r\n") == b"Flushed all queues.\r\n"
    assert client.get("a") is None and client.get("b") is None


def test_version(client):
    assert client.request(b"version\r\n") == VERSION_REPLY


GLOBAL_STATS = ["uptime", "time", "version", "curr_items", "total_items", "bytes",
                "curr_connections", "total_connections", "cmd_get", "cmd_set", "cmd_peek",
                "get_hits", "get_misses", "bytes_read", "bytes_written"]
QUEUE_STATS = ["items", "bytes", "total_items", "logsize", "expired_items", "mem_items",
               "mem_bytes", "age", "discarded", "waiters", "open_transactions", "transactions",
               "canceled_transactions"]


def test_stats_lists_every_global_and_per_queue_stat_then_end(client):
    client.set("q", b"hello")
    client.set("q", b"abc")
    client.get("q")
    client.get("empty")
    client.request(b"get q/peek\r\n", b"END\r\n")
    reply = client.request(b"stats\r\n", b"END\r\n")
    lines = reply.split(b"\r\n")
    assert lines[-2:] == [b"END", b""]
    names = [line.split(b" ")[1].decode() for line in lines[:-2]]
    assert all(line.startswith(b"STAT ") for line in lines[:-2])
    assert names == GLOBAL_STATS + [f"queue_empty_{k}" for k in QUEUE_STATS] + [
        f"queue_q_{k}" for k in QUEUE_STATS]
    stats = client.stats()
    assert stats["version"] == "2.4.1-workbook"
    assert (stats["curr_items"], stats["total_items"], stats["bytes"]) == ("1", "2", "3")
    assert (stats["cmd_set"], stats["cmd_get"], stats["cmd_peek"]) == ("2", "2", "1")
    assert (stats["get_hits"], stats["get_misses"]) == ("2", "1")
    assert stats["curr_connections"] == "1"
    assert int(stats["bytes_read"]) > 0 and int(stats["bytes_written"]) > 0
    assert abs(int(stats["time"]) - time.time()) < 5
    assert (stats["queue_q_items"], stats["queue_q_bytes"], stats["queue_q_total_items"]) == (
        "1", "3", "2")
    assert (stats["queue_q_mem_items"], stats["queue_q_mem_bytes"]) == ("1", "3")
    assert int(stats["queue_q_logsize"]) > 0


def test_quit_closes_the_connection_without_a_reply(client):
    client.send(b"quit\r\n")
    assert client.closed_by_server() and client.pending == b""


def test_shutdown_stops_the_server_without_a_reply(client, server):
    client.send(b"shutdown\r\n")
    assert client.closed_by_server() and client.pending == b""
    wait_until(lambda: server.stopped, 10, what="server stopped")


@pytest.mark.parametrize("line", [b"add q 0 0 1", b"incr q 1", b"touch q 0", b"", b"garbage",
                                  b"\x00\xff\xfe", b" get q"])
def test_any_other_command_is_a_client_error_then_the_connection_closes(client, line):
    client.send(line + b"\r\nversion\r\n")
    assert client.line() == b"CLIENT_ERROR unknown command\r\n"
    assert client.closed_by_server() and client.pending == b""  # the version was never answered


@pytest.mark.parametrize("line, reason", [
    (b"get", b"get needs a queue name"),
    (b"gets", b"get needs a queue name"),
    (b"delete", b"delete needs a queue name"),
    (b"flush", b"flush needs a queue name"),
])
def test_a_command_missing_its_argument_is_a_client_error_and_the_connection_stays(
        client, line, reason):
    assert client.request(line + b"\r\n") == b"CLIENT_ERROR " + reason + b"\r\n"
    assert client.request(b"version\r\n") == VERSION_REPLY


def test_a_request_line_that_never_ends_is_refused(client):
    client.send(b"get " + b"q" * 5000)
    assert client.line() == b"CLIENT_ERROR line too long\r\n"
    assert client.closed_by_server()


# -- queue names and creation --------------------------------------------------------------------


@pytest.mark.parametrize("key", [b"a.b", b"a~b", b"caf\xc3\xa9", b"+child", b"parent+", b"a*b"])
def test_a_bad_queue_name_is_a_client_error_that_closes(client, server, key):
    assert client.request(b"get " + key + b"\r\n").startswith(b"CLIENT_ERROR bad queue name")
    assert client.closed_by_server()
    assert list(server.config.data_dir.iterdir()) == []


def test_uptime_and_total_connections_count_up(server, connect):
    first = connect(server.port)
    before = first.stats()
    time.sleep(1.1)
    for _ in range(3):
        connect(server.port).stats()
    after = first.stats()
    assert int(after["uptime"]) >= int(before["uptime"]) + 1
    assert int(after["total_connections"]) == int(before["total_connections"]) + 3


def test_age_is_how_long_the_last_item_removed_had_waited(client):
    client.set("q", b"waits")
    time.sleep(0.3)
    assert client.get("q") == b"waits"
    assert 300 <= int(client.stats()["queue_q_age"]) < 5000  # milliseconds


def test_the_largest_item_by_default_is_memcacheds_1_mib(client):
    assert client.set("q", b"x" * (1024 * 1024 + 1)) == b"NOT_STORED\r\n"
    assert client.set("q", b"x" * (1024 * 1024)) == b"STORED\r\n"
    assert len(client.get("q")) == 1024 * 1024


def test_set_and_get_create_queues_delete_flush_and_stats_do_not(client, server):
    client.request(b"delete d\r\n")
    client.request(b"flush f\r\n")
    client.stats()
    assert client.request(b"get g/t=1\r\n") == b"END\r\n"
    client.set("s", b"x")
    stats = client.stats()
    assert sorted(n[len("queue_"):-len("_items")] for n in stats
                  if n.startswith("queue_") and n.endswith("_items") and "total" not in n
                  and "expired" not in n and "mem" not in n) == ["g", "s"]
    assert sorted(p.name for p in server.config.data_dir.iterdir()) == ["g", "s"]


# -- GET options ---------------------------------------------------------------------------------


def test_value_line_echoes_the_key_with_its_options(client):
    client.set("q", b"hello")
    client.send(b"get q/open\r\n")
    assert client.read_until(b"END\r\n") == value(b"q/open", b"hello")


def test_unknown_option_words_are_ignored(client):
    client.set("q", b"x")
    assert client.request(b"get q/banana/42\r\n", b"END\r\n") == value(b"q/banana/42", b"x")


def test_get_with_timeout_waits_for_an_item(connect):
    waiting, producer = connect(), connect()
    waiting.send(b"get q/t=5000\r\n")
    wait_until(lambda: queue_stat(producer, "q", "waiters") == 1, 5, what="one waiter")
    assert producer.set("q", b"late") == b"STORED\r\n"
    assert waiting.read_until(b"END\r\n") == value(b"q/t=5000", b"late")


def test_get_with_timeout_replies_end_when_nothing_comes(client):
    started = time.monotonic()
    assert client.request(b"get q/t=150\r\n") == b"END\r\n"
    assert time.monotonic() - started >= 0.14


def test_a_malformed_timeout_is_a_client_error_that_closes(client):
    assert client.request(b"get q/t=soon\r\n") == b"CLIENT_ERROR bad timeout\r\n"
    assert client.closed_by_server()


def test_waiters_are_served_first_come_first_served(connect):
    producer = connect()
    waiters = []
    for number in range(3):
        waiter = connect()
        waiter.send(b"get q/t=5000\r\n")
        wait_until(lambda number=number: queue_stat(producer, "q", "waiters") == number + 1, 5)
        waiters.append(waiter)
    for data in (b"first", b"second", b"third"):
        producer.set("q", data)
    assert [w.read_until(b"END\r\n") for w in waiters] == [
        value(b"q/t=5000", data) for data in (b"first", b"second", b"third")]


def test_a_disconnect_cancels_the_wait_and_the_item_goes_to_the_next_client(connect):
    producer, gone, patient = connect(), connect(), connect()
    gone.send(b"get q/t=60000\r\n")  # far longer than the test waits: only the disconnect ends it
    wait_until(lambda: queue_stat(producer, "q", "waiters") == 1, 5)
    gone.close()
    wait_until(lambda: queue_stat(producer, "q", "waiters") == 0, 10, what="waiter cancelled")
    producer.set("q", b"item")
    assert patient.get("q/t=1000") == b"item"


def test_a_client_that_half_closes_while_waiting_gets_end_at_once(connect):
    """`printf 'get q/t=60000\r\n' | nc` sends its request and closes its side: the wait ends."""
    producer, leaving = connect(), connect()
    leaving.send(b"get q/t=60000\r\n")
    wait_until(lambda: queue_stat(producer, "q", "waiters") == 1, 5)
    leaving.sock.shutdown(socket.SHUT_WR)
    assert leaving.read_until(b"END\r\n") == b"END\r\n"
    assert leaving.closed_by_server()
    producer.set("q", b"kept")
    assert producer.get("q") == b"kept"  # the item was not handed to the client that left


def test_deleting_the_queue_wakes_every_waiter_with_end(connect):
    producer, first, second = connect(), connect(), connect()
    for waiter in (first, second):
        waiter.send(b"get q/t=10000\r\n")
    wait_until(lambda: queue_stat(producer, "q", "waiters") == 2, 5)
    assert producer.request(b"delete q\r\n") == b"DELETED\r\n"
    assert first.line() == b"END\r\n" and second.line() == b"END\r\n"


def test_shutdown_wakes_every_waiter_with_end(connect, server):
    waiter, admin = connect(), connect()
    waiter.send(b"get q/t=10000\r\n")
    wait_until(lambda: queue_stat(admin, "q", "waiters") == 1, 5)
    admin.send(b"shutdown\r\n")
    assert waiter.line() == b"END\r\n"
    wait_until(lambda: server.stopped, 10)


def test_open_then_close_removes_the_item_for_good(connect):
    worker = connect()
    worker.set("q", b"job")
    assert worker.get("q/open") == b"job"
    assert worker.request(b"get q/close\r\n") == b"END\r\n"
    worker.close()
    other = connect()
    assert other.get("q") is None
    assert queue_stat(other, "q", "open_transactions") == 0


def test_close_without_open_replies_end_and_fetches_nothing(client):
    client.set("q", b"stays")
    assert client.request(b"get q/close\r\n") == b"END\r\n"  # nothing open: ignored
    assert client.get("q") == b"stays"


def test_abort_puts_the_oldest_open_read_back_at_the_head(client):
    for data in (b"a", b"b", b"c"):
        client.set("q", data)
    assert client.get("q/open") == b"a"
    assert client.get("q/open") == b"b"
    assert client.request(b"get q/abort\r\n") == b"END\r\n"  # gives back "a"
    assert client.get("q/close/open") == b"a"  # acks "b", opens "a" from the head
    assert client.request(b"get q/close\r\n") == b"END\r\n"
    assert client.get("q") == b"c"


def test_abort_with_nothing_open_replies_end(client):
    client.set("q", b"x")
    assert client.request(b"get q/abort\r\n") == b"END\r\n"
    assert queue_stat(client, "q", "items") == 1


def test_peek_returns_the_head_without_removing_it(client):
    client.set("q", b"head")
    client.set("q", b"next")
    assert client.get("q/peek") == b"head"
    assert client.get("q/peek") == b"head"
    assert client.get("q") == b"head"


def test_peek_with_timeout_waits_for_an_item(connect):
    peeker, producer = connect(), connect()
    peeker.send(b"get q/peek/t=5000\r\n")
    wait_until(lambda: queue_stat(producer, "q", "waiters") == 1, 5)
    producer.set("q", b"seen")
    assert peeker.read_until(b"END\r\n") == value(b"q/peek/t=5000", b"seen")
    assert producer.get("q") == b"seen"  # peeking left it there


def test_close_open_acks_the_previous_item_and_opens_the_next(client):
    for data in (b"1", b"2", b"3"):
        client.set("q", data)
    got = [client.get("q/open"), client.get("q/close/open"), client.get("q/open/close")]
    assert got == [b"1", b"2", b"3"]
    assert client.request(b"get q/close/open\r\n") == b"END\r\n"
    stats = client.stats()
    assert stats["queue_q_open_transactions"] == "0" and stats["queue_q_items"] == "0"


@pytest.mark.parametrize("key", [b"/open", b"/", b"q/peek/open", b"q/peek/close", b"q/abort/peek",
                                 b"q/abort/open", b"q/close/abort"])
def test_forbidden_option_combinations_are_a_client_error_that_closes(client, key):
    client.set("q", b"x")
    assert client.request(b"get " + key + b"\r\n").startswith(b"CLIENT_ERROR ")
    assert client.closed_by_server() and client.pending == b""


def test_a_plain_get_while_holding_an_open_read_is_an_error_that_rolls_back(connect):
    worker = connect()
    worker.set("q", b"held")
    worker.set("q", b"next")
    assert worker.get("q/open") == b"held"
    assert worker.request(b"get q\r\n") == b"ERROR\r\n"
    assert worker.closed_by_server()
    other = connect()
    assert other.get("q") == b"held"


def test_a_plain_get_on_another_queue_is_fine_while_holding_an_open_read(client):
    client.set("a", b"1")
    client.set("b", b"2")
    assert client.get("a/open") == b"1"
    assert client.get("b") == b"2"


def test_one_open_read_more_than_max_open_reads_is_an_error_that_closes(start_server, connect):
    server = start_server(max_open_reads=2)
    worker = connect(server.port)
    for data in (b"a", b"b", b"c"):
        worker.set("q", data)
    assert [worker.get("q/open"), worker.get("q/open")] == [b"a", b"b"]
    assert worker.request(b"get q/open\r\n") == b"ERROR\r\n"
    assert worker.closed_by_server()
    other = connect(server.port)
    assert [other.get("q"), other.get("q"), other.get("q")] == [b"a", b"b", b"c"]


# -- reliable reads ------------------------------------------------------------------------------


def test_open_reads_go_back_to_the_head_in_order_when_the_client_disconnects(connect):
    producer, worker = connect(), connect()
    for data in (b"1", b"2", b"3", b"4"):
        producer.set("q", data)
    assert [worker.get("q/open"), worker.get("q/open")] == [b"1", b"2"]
    assert queue_stat(producer, "q", "open_transactions") == 2
    worker.close()
    wait_until(lambda: queue_stat(producer, "q", "open_transactions") == 0, 5)
    assert [producer.get("q") for _ in range(4)] == [b"1", b"2", b"3", b"4"]


def test_an_open_item_counts_in_open_transactions_not_in_items_or_bytes(client):
    client.set("q", b"12345")
    client.set("q", b"678")
    client.get("q/open")
    stats = client.stats()
    assert (stats["queue_q_items"], stats["queue_q_bytes"]) == ("1", "3")
    assert stats["queue_q_open_transactions"] == "1"
    assert (stats["curr_items"], stats["bytes"]) == ("1", "3")
    assert stats["queue_q_transactions"] == "1"


def test_an_open_read_older_than_open_timeout_is_aborted(start_server, connect):
    server = start_server(open_timeout=0.2)
    worker, other = connect(server.port), connect(server.port)
    worker.set("q", b"slow job")
    assert worker.get("q/open") == b"slow job"
    assert other.get("q/t=5000") == b"slow job"  # handed back once the read timed out
    assert queue_stat(other, "q", "canceled_transactions") == 1


def test_a_plain_get_is_at_most_once_the_item_is_gone_with_its_client(connect):
    producer, careless = connect(), connect()
    producer.set("q", b"x")
    assert careless.get("q") == b"x"
    careless.close()
    assert producer.get("q") is None


# -- expiry --------------------------------------------------------------------------------------


def test_an_absolute_exptime_in_the_past_is_never_returned(client):
    client.send(b"set q 0 1000000 3\r\nold\r\n")  # 1970-01-12: long gone
    assert client.line() == b"STORED\r\n"
    client.set("q", b"new")
    assert client.get("q") == b"new"
    assert queue_stat(client, "q", "expired_items") == 1


def test_a_relative_exptime_expires_the_item_after_that_many_seconds(client):
    client.send(b"set q 0 1 3\r\nbye\r\n")
    assert client.line() == b"STORED\r\n"
    assert client.get("q/peek") == b"bye"  # still there at first
    wait_until(lambda: client.get("q/peek") is None, 5, what="item expired")
    assert queue_stat(client, "q", "expired_items") == 1


def test_an_absolute_exptime_in_the_future_keeps_the_item(client):
    client.send(b"set q 0 %d 4\r\nkeep\r\n" % (time.time() + 3600))
    assert client.line() == b"STORED\r\n"
    assert client.get("q") == b"keep"


def test_max_age_caps_the_lifetime_of_every_item(start_server, connect):
    server = start_server(max_age=0.3)
    client = connect(server.port)
    client.set("q", b"short-lived")  # exptime 0 would be "never" without max_age
    assert client.get("q/peek") == b"short-lived"
    wait_until(lambda: client.get("q/peek") is None, 5, what="max_age expiry")
    assert queue_stat(client, "q", "expired_items") == 1


# -- fanout --------------------------------------------------------------------------------------


def test_a_fanout_child_gets_a_copy_of_every_item_added_to_the_parent_after_it_is_named(client):
    client.set("orders", b"before")
    assert client.get("orders+audit") is None  # naming the child creates it
    client.set("orders", b"after")
    assert client.get("orders+audit") == b"after"
    assert client.get("orders+audit") is None  # "before" was never copied
    assert [client.get("orders"), client.get("orders")] == [b"before", b"after"]


def test_each_fanout_child_is_an_ordinary_queue_with_its_own_journal(client, server):
    client.get("p+a")
    client.get("p+b")
    client.set("p", b"x")
    assert client.get("p+a") == b"x"
    assert client.get("p+b/open") == b"x"
    assert client.get("p") == b"x"
    names = sorted(path.name for path in server.config.data_dir.iterdir())
    assert names == ["p", "p+a", "p+b"]


def test_deleting_a_fanout_child_stops_the_copying(client):
    client.get("p+c")
    client.request(b"delete p+c\r\n")
    client.set("p", b"x")
    stats = client.stats()
    assert "queue_p+c_items" not in stats
    assert stats["queue_p_items"] == "1"


def test_fanout_children_found_on_disk_keep_receiving_after_a_restart(start_server, tmp_path):
    data = tmp_path / "fan"
    first = start_server(data_dir=data)
    from lab.testing.kestrel import RawClient
    with RawClient(first.port) as client:
        client.get("p+kept")
    first.stop()
    second = start_server(data_dir=data)
    with RawClient(second.port) as client:
        client.set("p", b"copied")
        assert client.get("p+kept") == b"copied"
