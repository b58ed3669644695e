"""What each web worker and each job worker is doing right now, seen from outside, as `lsof` would.

A web worker is one of gunicorn's worker processes; a job worker is one of the stage's job-worker
processes (for stage 04, an `rq worker`, whose job runs in a forked work horse). Each is:

- `t`: waiting on Twitter (it, or its work horse, holds a connection to Twitter's API port);
- `b`: busy with something else (a web worker holding a browser's connection);
- `i`: idle.

One string per kind and sample, a letter per worker in a steady order: `"ttbi"` is four web
workers, two stuck on Twitter.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from lab.runtime.process import ManagedProcess

IDLE, BUSY, ON_TWITTER = "i", "b", "t"


PROC_TCP = ("/proc/net/tcp", "/proc/net/tcp6")
ESTABLISHED = "01"  # the state column of /proc/net/tcp


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def _linux_snapshot() -> Callable[[int], list[tuple[int, int]]]:
    """Read the kernel's TCP tables once, then each pid's sockets: a few milliseconds, where asking
    psutil process by process parses the tables again for each (the drill's load leaves thousands
    of closed connections in them)."""
    ports: dict[int, tuple[int, int]] = {}  # socket inode -> (local port, remote port)
    for name in PROC_TCP:
        with open(name) as table:
            next(table)  # the header
            for line in table:
                _, local, remote, state, rest = line.split(None, 4)
                if state == ESTABLISHED:  # the inode is the sixth field after the state
                    ports[int(rest.split(None, 6)[5])] = (_port(local), _port(remote))

    def of(pid: int) -> list[tuple[int, int]]:
        found = []
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue  # closed meanwhile
                if target.startswith("socket:[") and int(target[8:-1]) in ports:
                    found.append(ports[int(target[8:-1])])
        except OSError:  # the process has gone
            pass
        return found

    return of


def _psutil_snapshot() -> Callable[[int], list[tuple[int, int]]]:
    """Elsewhere (macOS): psutil, process by process."""

    def of(pid: int) -> list[tuple[int, int]]:
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
            return [(c.laddr.port, c.raddr.port if c.raddr else 0)
                    for c in connections if c.status == psutil.CONN_ESTABLISHED]
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return []

    return of


def connections_now() -> Callable[[int], list[tuple[int, int]]]:
    """The established TCP connections of any pid, as (local port, remote port), as of now."""
    return _linux_snapshot() if os.path.exists(PROC_TCP[0]) else _psutil_snapshot()


def _family(process: psutil.Process) -> list[int]:
    try:
        return [process.pid, *(child.pid for child in process.children(recursive=True))]
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []


def state_of(process: psutil.Process, connections: Callable[[int], list[tuple[int, int]]], twitter_port: int,
             serving_port: int | None = None) -> str:
    """`t`, `b` or `i` for one worker and the processes it forked."""
    held = [ports for pid in _family(process) for ports in connections(pid)]
    if any(remote == twitter_port for _, remote in held):
        return ON_TWITTER
    if serving_port is not None and any(local == serving_port for local, _ in held):
        return BUSY
    return IDLE


def _children(pid: int) -> list[psutil.Process]:
    try:
        return sorted(psutil.Process(pid).children(), key=lambda child: child.pid)
    except psutil.NoSuchProcess:
        return []


def slots_probe(
    web_pid: int, job_pids: Callable[[], list[int]] | None, env: dict
) -> Callable[[], tuple[str, str]]:
    """A function returning (web workers' states, job workers' states) now."""
    twitter_port, web_port = int(env["TWITTER_PORT"]), int(env["WEB_PORT"])

    def probe() -> tuple[str, str]:
        connections = connections_now()
        web = "".join(state_of(worker, connections, twitter_port, web_port) for worker in _children(web_pid))
        jobs = ""
        if job_pids is not None:
            for pid in job_pids():
                try:
                    jobs += state_of(psutil.Process(pid), connections, twitter_port)
                except psutil.NoSuchProcess:
                    continue
        return web, jobs

    return probe


def job_worker_pids(processes: Mapping[str, "ManagedProcess"]) -> Callable[[], list[int]] | None:
    """The job workers' pids, in a steady order, read anew each time (a process manager may have
    started one again): each `worker.N` process where the Procfile runs one job worker per
    process (stage 04's `rq worker`), else the children of the one `worker` process. None for a
    stage with no job workers."""
    if any(name.startswith("worker.") for name in processes):
        return lambda: [processes[name].pid for name in sorted(processes) if name.startswith("worker.")]
    if "worker" in processes:
        return lambda: [child.pid for child in _children(processes["worker"].pid)]
    return None
