"""The server as a real process: kill -9 under load, restarts, a damaged journal, clean stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from lab.kestrel.records import encode_add
from lab.runtime.kestrel_server import kestrel_argv, kestrel_process
from lab.runtime.process import free_port, wait_until
from lab.testing.kestrel import RawClient

WRITERS = 4


def write_until_killed(port: int, writer: int, acked: list[int], stop: threading.Event) -> None:
    """Set items "<writer>:<seq>" one after another; record each seq that got STORED."""
    try:
        with RawClient(port, timeout=5) as client:
            seq = 0
            while not stop.is_set():
                data = b"%d:%06d" % (writer, seq)
                if client.set("crash", data) != b"STORED\r\n":
                    return  # the server died mid-reply
                acked.append(seq)
                seq += 1
    except OSError:
        return


def drain(client: RawClient, queue: str) -> list[bytes]:
    items = []
    while (item := client.get(queue)) is not None:
        items.append(item)
    return items


CRASH_ROUNDS = 8  # kill -9 at a different moment each round: 16 crashes in all, about 40 s
EVENT_LOOPS = ("uvloop", "asyncio")  # the rounds take turns, so that both loops are crashed


@pytest.mark.parametrize("fsync", ["always", "every:50"])
@pytest.mark.parametrize("round_number", range(CRASH_ROUNDS))
def test_every_stored_item_survives_kill_9_exactly_once_in_order(tmp_path, fsync, round_number):
    data = tmp_path / "data"
    acked: list[list[int]] = [[] for _ in range(WRITERS)]
    stop = threading.Event()
    event_loop = EVENT_LOOPS[round_number % len(EVENT_LOOPS)]
    with kestrel_process(data, "--fsync", fsync, "--event-loop", event_loop) as server:
        with RawClient(server.port) as setup:
            for n in range(3):
                setup.set("crash", b"seed:%d" % n)
        holder = RawClient(server.port)  # holds two open reads at the moment of the crash
        held = [holder.get("crash/open"), holder.get("crash/open")]
        assert held == [b"seed:0", b"seed:1"]
        writers = [threading.Thread(target=write_until_killed, args=(server.port, n, acked[n], stop))
                   for n in range(WRITERS)]
        for thread in writers:
            thread.start()
        try:
            wait_until(lambda: sum(map(len, acked)) >= 400 + 75 * round_number, 30,
                       what="items acknowledged")
            server.kill()  # SIGKILL while the writers are mid-flight
        finally:
            stop.set()
            for thread in writers:
                thread.join(10)
            holder.close()
    with kestrel_process(data, "--fsync", fsync) as server, RawClient(server.port) as client:
        items = drain(client, "crash")
    # The two open reads are back at the head, in order, then the third seed item.
    assert items[:3] == [b"seed:0", b"seed:1", b"seed:2"]
    by_writer: dict[int, list[int]] = {n: [] for n in range(WRITERS)}
    for item in items[3:]:
        writer, seq = item.split(b":")
        by_writer[int(writer)].append(int(seq))
    for writer, seqs in by_writer.items():
        assert seqs == sorted(set(seqs)), "an item was duplicated or reordered"
        assert set(acked[writer]) <= set(seqs), "an acknowledged item was lost"
        # Anything beyond what was acknowledged can only be the one item in flight.
        assert len(seqs) <= len(acked[writer]) + 1
        assert seqs == list(range(len(seqs)))


def test_items_and_open_reads_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    with kestrel_process(data) as server, RawClient(server.port) as client:
        for n in range(5):
            client.set("jobs", b"job%d" % n)
        assert client.get("jobs") == b"job0"
        assert client.get("jobs/open") == b"job1"
        server.kill()
    with kestrel_process(data) as server, RawClient(server.port) as client:
        assert client.stats()["queue_jobs_items"] == "4"
        assert drain(client, "jobs") == [b"job1", b"job2", b"job3", b"job4"]


def test_sigterm_stops_cleanly_with_exit_code_0_and_keeps_the_items(tmp_path):
    data = tmp_path / "data"
    server = kestrel_process(data, "--fsync", "never").start()
    try:
        with RawClient(server.port) as client:
            client.set("q", b"taken")
            client.set("q", b"kept")
            assert client.get("q") == b"taken"
        assert server.stop() == 0  # SIGTERM, then wait
        assert "stopped" in server.log_text()
    finally:
        server.stop()
        server.remove_log()
    with kestrel_process(data) as server, RawClient(server.port) as client:
        assert drain(client, "q") == [b"kept"]


def test_the_shutdown_command_exits_with_code_0(tmp_path):
    server = kestrel_process(tmp_path / "data").start()
    try:
        with RawClient(server.port) as client:
            client.set("q", b"x")
            client.send(b"shutdown\r\n")
            assert client.closed_by_server()
        wait_until(lambda: not server.alive, 10, what="server exited")
        assert server.returncode == 0
    finally:
        server.stop()
        server.remove_log()


@pytest.mark.parametrize("damage", ["truncate mid-record", "append garbage"])
def test_a_damaged_journal_tail_is_cut_off_and_the_rest_served(tmp_path, damage):
    data = tmp_path / "data"
    with kestrel_process(data) as server, RawClient(server.port) as client:
        for n in range(10):
            client.set("q", b"item%d" % n)
    journal = data / "q"
    content = journal.read_bytes()
    if damage == "truncate mid-record":
        journal.write_bytes(content[:-7])  # the last ADD loses its end
        expected = [b"item%d" % n for n in range(9)]
    else:
        journal.write_bytes(content + b"\x02\x10\x00\x00\x00garbage that is not a record")
        expected = [b"item%d" % n for n in range(10)]
    with kestrel_process(data) as server, RawClient(server.port) as client:
        assert drain(client, "q") == expected
        client.set("q", b"after")  # appends after the cut, not after the garbage
        log = server.log_text()
    assert "cutting off" in log
    with kestrel_process(data) as server, RawClient(server.port) as client:
        assert drain(client, "q") == [b"after"]
        assert "cutting off" not in server.log_text()


def test_every_journal_in_the_data_folder_becomes_a_queue_at_start_up(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "made_by_hand").write_bytes(encode_add(1, 0, b"hello"))
    (data / "not.a.queue").write_bytes(b"ignored")
    with kestrel_process(data) as server, RawClient(server.port) as client:
        stats = client.stats()
        assert stats["queue_made_by_hand_items"] == "1"
        assert not any("not.a.queue" in name for name in stats)
        assert client.get("made_by_hand") == b"hello"


@pytest.mark.parametrize("choice, expected", [("auto", "uvloop"), ("uvloop", "uvloop"),
                                              ("asyncio", "asyncio")])
def test_the_server_runs_on_the_event_loop_asked_for_and_says_which(tmp_path, choice, expected):
    with kestrel_process(tmp_path / "data", "--event-loop", choice) as server:
        with RawClient(server.port) as client:
            assert client.set("q", b"one") == b"STORED\r\n"
            assert client.get("q/open") == b"one"
            assert client.get("q/abort") is None
            assert client.get("q") == b"one"
        assert f"event loop {expected}\n" in server.log_text()


NO_UVLOOP = "raise ImportError('no uvloop on this machine')\n"


def test_without_uvloop_auto_falls_back_to_asyncio_and_uvloop_is_a_clear_error(tmp_path):
    (tmp_path / "shadow").mkdir()
    (tmp_path / "shadow" / "uvloop.py").write_text(NO_UVLOOP)  # as if uvloop did not install
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "shadow"), *sys.path])}
    with kestrel_process(tmp_path / "data", "--event-loop", "auto", env=env) as server:
        with RawClient(server.port) as client:
            assert client.set("q", b"one") == b"STORED\r\n"
        assert "event loop asyncio\n" in server.log_text()
    argv = kestrel_argv(tmp_path / "data", "--event-loop", "uvloop", port=free_port())
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 2
    assert "uvloop is not installed (pip install uvloop)" in result.stderr


def test_a_port_in_use_is_a_clear_error(tmp_path):
    with kestrel_process(tmp_path / "a") as first:
        argv = kestrel_argv(tmp_path / "b", port=first.port)
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert result.returncode == 1
        assert "cannot run" in result.stderr and "address already in use" in result.stderr.lower()


SIGNALLED_WHILE_STARTING = """
import os, signal, sys
from lab.kestrel import cli, server

start = server.KestrelServer.start

async def start_after_a_signal(self):
    os.kill(os.getpid(), signal.{name})  # as a supervisor would, the moment it sees the process
    await start(self)

server.KestrelServer.start = start_after_a_signal
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_signal_while_starting_up_still_stops_cleanly(tmp_path, name):
    """The handlers are set before the port opens: a signal sent as soon as it answers is not lost."""
    argv = kestrel_argv(tmp_path / "data", port=free_port())
    script = [argv[0], "-c", SIGNALLED_WHILE_STARTING.format(name=name), *argv[3:]]
    result = subprocess.run(script, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stderr


def test_signal_sigint_also_stops_cleanly(tmp_path):
    server = kestrel_process(tmp_path / "data").start()
    try:
        server.signal(signal.SIGINT)
        wait_until(lambda: not server.alive, 10)
        assert server.returncode == 0
    finally:
        server.stop()
        server.remove_log()
