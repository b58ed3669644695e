"""Compaction runs in a worker thread: clients are answered meanwhile, and what they did meanwhile
is in the new journal, whatever happens to the queue before the switch."""

from __future__ import annotations

import threading

import pytest

from lab.kestrel import files as files_module
from lab.kestrel.config import FsyncPolicy
from lab.runtime.process import wait_until

ITEM = b"." * 998  # with a two-byte name: 1,000-byte items


def item(name: str) -> bytes:
    return name.encode() + ITEM


@pytest.fixture
def held_compaction(monkeypatch):
    """Every compaction stops before writing its new file until `release` is set."""
    started, release = threading.Event(), threading.Event()
    real = files_module.write_new_file

    def held(path, records):
        started.set()
        if not release.wait(20):
            raise OSError("the test never released the compaction")
        return real(path, records)

    monkeypatch.setattr(files_module, "write_new_file", held)
    yield started, release
    release.set()


def start_compaction(server, client, started) -> None:
    """Six items in, five taken: the journal is over 4x its one live item, so it is rewritten."""
    for n in range(6):
        assert client.set("q", item(f"a{n}")) == b"STORED\r\n"
    for n in range(5):
        assert client.get("q") == item(f"a{n}")
    assert started.wait(10), "no compaction started"


def compaction_done(server) -> bool:
    queue = server.server.collection.get("q")
    return server.call(lambda: queue is None or queue.compacting is None)


def test_clients_are_answered_while_a_compaction_writes_and_their_changes_survive_it(
        start_server, connect, held_compaction, tmp_path):
    started, release = held_compaction
    data = tmp_path / "journal"
    # Small memory: most items added meanwhile live only in the journal, read back by offset.
    server = start_server(data_dir=data, fsync=FsyncPolicy("always"), max_memory=3000,
                          journal_compact_bytes=4096)
    holder, worker = connect(server.port), connect(server.port)
    start_compaction(server, worker, started)

    assert worker.request(b"version\r\n").startswith(b"VERSION ")  # the loop is not held
    for n in range(10):
        assert worker.set("q", item(f"b{n}")) == b"STORED\r\n"  # fsynced in the old file
    assert holder.get("q/open") == item("a5")
    assert worker.get("q") == item("b0")

    release.set()
    wait_until(lambda: compaction_done(server), timeout=10, what="the compaction")
    journal_file = data / "q"
    assert item("a0") not in journal_file.read_bytes(), "the journal was not rewritten"
    assert holder.get("q/abort") is None  # a5 goes back to the head, after the switch
    assert worker.get("q") == item("a5")
    # b4 on are read back from the new file, at offsets the switch moved.
    assert [worker.get("q") for _ in range(4)] == [item(f"b{n}") for n in range(1, 5)]
    server.stop()

    again = connect(start_server(data_dir=data).port)
    got = [again.get("q") for _ in range(6)]
    assert got == [item(f"b{n}") for n in range(5, 10)] + [None]


def test_a_queue_deleted_during_its_compaction_stays_deleted(start_server, connect, held_compaction,
                                                              tmp_path):
    started, release = held_compaction
    data = tmp_path / "journal"
    server = start_server(data_dir=data, journal_compact_bytes=4096)
    client = connect(server.port)
    start_compaction(server, client, started)

    assert client.request(b"delete q\r\n") == b"DELETED\r\n"
    assert client.set("q", b"new") == b"STORED\r\n"  # a new queue, a new journal
    release.set()
    wait_until(lambda: not [path for path in data.iterdir() if path.name.endswith("~~")],
               timeout=10, what="the abandoned compaction's file removed")
    server.stop()

    again = connect(start_server(data_dir=data).port)
    assert [again.get("q"), again.get("q")] == [b"new", None]


def test_a_stop_during_a_compaction_loses_nothing_and_leaves_no_temp_file(start_server, connect,
                                                                  held_compaction, tmp_path):
    started, release = held_compaction
    data = tmp_path / "journal"
    server = start_server(data_dir=data, journal_compact_bytes=4096)
    client = connect(server.port)
    start_compaction(server, client, started)
    assert client.set("q", item("c0")) == b"STORED\r\n"

    stopping = threading.Thread(target=server.stop)
    stopping.start()
    wait_until(lambda: server.server.stopping, timeout=10, what="the stop to begin")
    release.set()
    stopping.join(20)
    assert server.stopped

    assert not [path for path in data.iterdir() if path.name.endswith("~~")]
    again = connect(start_server(data_dir=data).port)
    assert [again.get("q"), again.get("q"), again.get("q")] == [item("a5"), item("c0"), None]


def test_a_set_held_for_the_switch_is_answered_when_its_queue_is_deleted(start_server, connect,
                                                                          held_compaction, monkeypatch,
                                                                          tmp_path):
    """A `set` that arrives in a compaction's last round hears STORED only after the switch. If
    the queue is deleted instead, there is no switch: it must be answered all the same, not left
    waiting (its client would hang, and a client that closed would never be let go)."""
    started, release = held_compaction
    last_round, finish_round = threading.Event(), threading.Event()
    real_copy = files_module.copy_range

    def held_copy(source, target, start, end, sync):
        if sync:  # in a worker thread: the last round, as the records appended are few
            last_round.set()
            if not finish_round.wait(20):
                raise OSError("the test never released the last round")
        return real_copy(source, target, start, end, sync)

    monkeypatch.setattr(files_module, "copy_range", held_copy)
    server = start_server(data_dir=tmp_path / "journal", fsync=FsyncPolicy("always"),
                          journal_compact_bytes=4096)
    writer, deleter = connect(server.port), connect(server.port)
    start_compaction(server, writer, started)
    assert writer.set("q", item("b0")) == b"STORED\r\n"  # after the snapshot: a last round to copy
    release.set()
    assert last_round.wait(10), "the last round did not start"

    writer.send(b"set q 0 0 3\r\nnew\r\n")  # held for the switch
    assert deleter.request(b"delete q\r\n") == b"DELETED\r\n"
    assert writer.line() == b"STORED\r\n"  # the set came before the delete
    finish_round.set()
    wait_until(lambda: compaction_done(server), timeout=10, what="the compaction abandoned")
    assert writer.request(b"version\r\n").startswith(b"VERSION ")
    assert writer.get("q") is None
