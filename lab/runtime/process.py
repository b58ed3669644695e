"""Start a process, wait until it answers, stop it: the lab's process control.

Every process runs in its own session (process group) with its output in a log file, so that:
- stopping it stops its children too (gunicorn's workers, a worker's forked job);
- a pipe that nobody reads can never fill up and freeze it;
- when it fails to start, the error shows the end of its log.
"""

from __future__ import annotations

import atexit
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil

LOCALHOST = "127.0.0.1"


class ProcessError(RuntimeError):
    pass


_CHOOSER = random.SystemRandom()  # not the shared generator, which a test may seed


def _ephemeral_ports() -> tuple[int, int]:
    """The ports the OS hands out to outgoing connections (Linux says; elsewhere IANA's range)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that nothing listens on right now, for a server about to start.

    Taken from below the range the OS hands out to outgoing connections: a port the OS picked
    (bind to port 0) comes from that range, and between this check and the server's own bind, any
    client's outgoing connection could take it (the stages open many: job workers, Redis clients).
    """
    low = _ephemeral_ports()[0]
    pool = range(max(1024, low - 12000), low) if low > 2048 else range(20000, 32000)
    for _ in range(200):
        port = _CHOOSER.choice(pool)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue  # in use: another
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # all taken: let the OS pick
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    interval: float = 0.02,
    what: str = "condition",
) -> None:
    """Poll `condition` until it is true; raise TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout:.1f} s")
        time.sleep(interval)


def connects_to(pid: int, port: int) -> bool:
    """Has process `pid` a TCP connection open to `port` on some host?"""
    try:
        return any(c.raddr and c.raddr.port == port for c in psutil.Process(pid).net_connections(kind="tcp"))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def process_calling(pids: Callable[[], Sequence[int]], port: int, timeout: float = 10) -> int:
    """The first of `pids()` (asked again and again) with a connection open to `port`: the process
    whose call is held there right now. Raises AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in pids():
            if connects_to(pid, port):
                return pid
        time.sleep(0.02)
    raise AssertionError(f"no process is calling port {port}")


class ManagedProcess:
    """A child process that the lab started and will stop.

    `ready` decides when the process is up: by default its port accepts a connection.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike | None = None,
        env: Mapping[str, str] | None = None,
        host: str = LOCALHOST,
        port: int | None = None,
        ready: Callable[[], bool] | None = None,
        log_path: str | os.PathLike | None = None,
    ):
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        self.host = host
        self.port = port
        self._ready = ready
        self._own_log = log_path is None
        if log_path is None:
            handle, log_path = tempfile.mkstemp(prefix=f"workbook-{name}-", suffix=".log")
            os.close(handle)
        self.log_path = Path(log_path)
        self.popen: subprocess.Popen | None = None

    # -- starting ---------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> "ManagedProcess":
        if self.popen is not None:
            raise ProcessError(f"{self.name} was already started")
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches its children
            )
        _running.add(self)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def is_ready(self) -> bool:
        if self._ready is not None:
            return self._ready()
        if self.port is None:
            return True
        # The port is picked free before the process starts, so another server may take it
        # first: an answer counts only if it comes from this process (or one of its children).
        return port_answers(self.host, self.port) and self.listens_on(self.port)

    def listens_on(self, port: int) -> bool:
        """Does this process, or one of its children, hold the listening socket on `port`?"""
        try:
            parent = psutil.Process(self.popen.pid)
            for process in (parent, *parent.children(recursive=True)):
                if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
                       for c in process.net_connections(kind="tcp")):
                    return True
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            # Linux denies reading the sockets of a process that is exiting: not ready, and the
            # next look finds it gone, or listening. Taking the port's answer instead would let
            # another server that holds the port pass for this one.
            pass
        return False

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise ProcessError(
                    f"{self.name} exited with code {self.returncode} while starting:\n"
                    f"{self.log_tail()}"
                )
            if self.is_ready():
                return
            if time.monotonic() > deadline:
                raise ProcessError(
                    f"{self.name} did not become ready within {timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    # -- state ------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise ProcessError(f"{self.name} was never started")
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- stopping ---------------------------------------------------------------------------

    def signal(self, signum: int) -> None:
        """Send a signal to the process alone (not its group), e.g. SIGKILL in a crash test."""
        if self.alive:
            os.kill(self.pid, signum)

    def ask_to_stop(self) -> None:
        """SIGTERM the whole group, and return at once: stop() then waits, and escalates."""
        if self.popen is not None and self.popen.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM the whole group, then SIGKILL whatever is left after `grace` seconds."""
        if self.popen is None:
            return None
        family = descendants(self.pid)
        if self.popen.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
                self.popen.wait()
        # The leader is gone; its children may not be (a worker that ignored SIGTERM, or one in a
        # process group of its own, as RQ's work horses are).
        _signal_group(self.pid, signal.SIGKILL)
        for child in family:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        _wait_gone(family)
        _running.discard(self)
        return self.popen.returncode

    def kill(self) -> int | None:
        """SIGKILL the whole group at once: a crash, not a clean stop."""
        return self.stop(grace=0)

    def remove_log(self) -> None:
        if self._own_log:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> "ManagedProcess":
        if self.popen is None:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
        self.remove_log()

    def __repr__(self) -> str:
        state = "running" if self.alive else f"exited {self.returncode}"
        pid = self.popen.pid if self.popen else "-"
        return f"<ManagedProcess {self.name} pid={pid} {state}>"


def descendants(pid: int) -> list[psutil.Process]:
    """Every process below `pid` (none once it is gone)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _wait_gone(processes: list[psutil.Process], timeout: float = 5.0) -> None:
    """Wait until every process is dead (a signal takes effect a moment after it is sent)."""
    deadline = time.monotonic() + timeout
    for process in processes:
        while time.monotonic() < deadline:
            try:
                os.waitpid(process.pid, os.WNOHANG)  # reap it if it was re-parented to us
            except ChildProcessError:
                pass
            try:
                if process.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


# Whatever a crashed test or an interrupted CLI left running is stopped when Python exits.
_running: set[ManagedProcess] = set()


@atexit.register
def _stop_everything() -> None:
    for process in list(_running):
        process.stop(grace=2.0)
