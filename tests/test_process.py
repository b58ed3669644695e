"""lab.runtime.process: start, wait until ready, stop the whole process group."""

import os
import signal
import socket
import sys
import textwrap

import psutil
import pytest

from lab.runtime.process import (
    ManagedProcess,
    ProcessError,
    free_port,
    port_answers,
    wait_until,
)

PY = sys.executable


def listener_script(port: int, children: int = 0, ignore_term: bool = False) -> list[str]:
    """A tiny server that listens on `port`, optionally with child processes of its own."""
    code = textwrap.dedent(
        f"""
        import signal, socket, subprocess, sys, time
        if {ignore_term}:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
                for _ in range({children})]
        print("children", *[k.pid for k in kids], flush=True)
        server = socket.socket()
        server.bind(("127.0.0.1", {port}))
        server.listen()
        time.sleep(600)
        """
    )
    return [PY, "-c", code]


def child_pids(process: ManagedProcess) -> list[int]:
    wait_until(lambda: "children" in process.log_text(), timeout=5, what="children started")
    line = next(text for text in process.log_text().splitlines() if text.startswith("children"))
    return [int(pid) for pid in line.split()[1:]]


def test_free_port_is_free_and_bindable():
    port = free_port()
    assert 1024 < port < 65536
    assert not port_answers("127.0.0.1", port)


def test_free_port_is_never_one_the_os_could_give_an_outgoing_connection():
    """Between the check and the server's bind, a client's connection must not be able to take it."""
    from lab.runtime.process import _ephemeral_ports

    low, high = _ephemeral_ports()
    ports = {free_port() for _ in range(50)}
    assert not any(low <= port <= high for port in ports)
    assert len(ports) > 40  # spread out: two servers starting at once rarely draw the same one


def test_start_waits_until_the_port_answers_and_stop_ends_it():
    port = free_port()
    process = ManagedProcess("listener", listener_script(port), port=port)
    process.start()
    try:
        assert process.alive
        assert port_answers("127.0.0.1", port)
    finally:
        exit_code = process.stop()
    assert exit_code == -signal.SIGTERM  # asked politely first: TERM, not KILL
    assert not process.alive
    assert not port_answers("127.0.0.1", port)


def test_stop_also_stops_the_process_children():
    port = free_port()
    with ManagedProcess("parent", listener_script(port, children=2), port=port) as process:
        kids = child_pids(process)
        assert all(psutil.pid_exists(pid) for pid in kids)
    for pid in kids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_stop_also_stops_children_that_left_the_process_group():
    """RQ's work horse puts itself in a process group of its own: stopping its job worker ends it too."""
    code = textwrap.dedent(
        """
        import os, signal, sys, time
        if os.fork() == 0:
            os.setpgrp()
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("children", os.getpid(), flush=True)  # once in a group of its own
            time.sleep(600)
            os._exit(0)
        time.sleep(600)
        """
    )
    with ManagedProcess("worker", [PY, "-c", code]) as process:
        [horse] = child_pids(process)
        assert os.getpgid(horse) != os.getpgid(process.pid)
    assert not psutil.pid_exists(horse) or psutil.Process(horse).status() == psutil.STATUS_ZOMBIE


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored():
    port = free_port()
    process = ManagedProcess("stubborn", listener_script(port, ignore_term=True), port=port).start()
    try:
        assert process.stop(grace=0.5) == -9
    finally:
        process.remove_log()


def test_a_process_that_exits_while_starting_raises_with_its_output():
    process = ManagedProcess(
        "broken", [PY, "-c", "import sys; print('no config file'); sys.exit(3)"], port=free_port()
    )
    with pytest.raises(ProcessError, match=r"exited with code 3(.|\n)*no config file"):
        process.start()
    process.remove_log()


def test_a_process_that_never_gets_ready_is_stopped_and_raises():
    process = ManagedProcess("silent", [PY, "-c", "import time; time.sleep(600)"], port=free_port())
    with pytest.raises(ProcessError, match="did not become ready"):
        process.start(timeout=0.5)
    assert not process.alive
    process.remove_log()


def start_where_a_stranger_listens() -> ManagedProcess:
    """Start a listener on a port another socket holds already: the start must fail with the
    listener's own error. The process, stopped."""
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        process = ManagedProcess("late", listener_script(port), port=port)
        with pytest.raises(ProcessError, match="Address already in use"):
            process.start(timeout=10)
    return process


def test_another_server_answering_on_the_port_does_not_make_the_process_ready():
    """A port is picked free before the process starts, and another server can take it first.
    Its answer must not pass for ours: the start fails with our process's own error instead of
    handing the caller a connection to a stranger."""
    process = start_where_a_stranger_listens()
    assert not process.alive
    process.remove_log()


def test_a_stranger_on_the_port_does_not_pass_while_our_process_sockets_cannot_be_read(monkeypatch):
    """Linux denies reading the sockets of a process that is exiting, as ours does when it finds
    the port taken: that must not count as "ready" because the stranger answers."""
    def denied(self, kind="inet"):
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "net_connections", denied)
    start_where_a_stranger_listens().remove_log()


def test_a_custom_readiness_check():
    marker = []
    process = ManagedProcess(
        "custom", [PY, "-c", "import time; time.sleep(600)"], ready=lambda: marker.append(1) or True
    )
    with process:
        assert marker
        assert process.alive


PRINT_AND_WAIT = "import os, time; print(os.environ['WORKBOOK_PROBE'], os.getcwd(), flush=True); time.sleep(600)"


def test_environment_and_working_directory_reach_the_process(tmp_path):
    process = ManagedProcess(
        "env",
        [PY, "-c", PRINT_AND_WAIT],
        env={"WORKBOOK_PROBE": "seen"},
        cwd=tmp_path,
        ready=lambda: "seen" in process.log_text(),
    )
    with process:
        assert process.log_text().strip() == f"seen {os.path.realpath(tmp_path)}"


def test_wait_until_raises_after_its_timeout():
    with pytest.raises(TimeoutError, match="never true not met"):
        wait_until(lambda: False, timeout=0.1, what="never true")
