"""RQ seen from Redis: the jobs not yet done, and a job worker caught at a precise moment."""

from __future__ import annotations

import signal
import time

import psutil
import redis

from lab.runtime.process import ManagedProcess, wait_until


def jobs_in_flight(queue) -> int:
    """Jobs of an RQ queue that are not yet done: queued, taken by a job worker, running, or
    waiting to be tried again. A job a job worker has taken sits on RQ's intermediate list until
    its horse starts it (and, if that job worker was killed in between, until a maintenance pass a
    minute later): counted here, where RQ's own counts miss it. Read in one MULTI/EXEC, so that a
    job moving from one place to the next while we look is counted once."""
    with queue.connection.pipeline(transaction=True) as snapshot:
        snapshot.llen(queue.key)
        snapshot.llen(queue.intermediate_queue_key)
        snapshot.zcard(queue.started_job_registry.key)
        snapshot.zcard(queue.scheduled_job_registry.key)
        return sum(snapshot.execute())


def waits_for_a_job(connection: redis.Redis, pid: int) -> bool:
    """Is process `pid` blocked in Redis right now, waiting for its next job (RQ's BLMOVE)?"""
    try:
        ports = {c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.laddr}
    except psutil.NoSuchProcess:
        return False
    return any(
        client["cmd"] == "blmove" and int(client["addr"].rsplit(":", 1)[1]) in ports
        for client in connection.client_list()
    )


def freeze_while_it_waits_for_a_job(process: ManagedProcess, connection: redis.Redis, timeout: float = 30) -> None:
    """SIGSTOP an RQ job worker at a moment it is blocked waiting for a job. Redis still hands
    the next job to its open wait, moving it onto RQ's intermediate list, but the job worker
    never reads the answer: the state a job worker killed just after taking a job leaves."""
    deadline = time.monotonic() + timeout
    while True:
        wait_until(lambda: waits_for_a_job(connection, process.pid), timeout=max(0.1, deadline - time.monotonic()),
                   what=f"{process.name} waiting for a job")
        process.signal(signal.SIGSTOP)
        if waits_for_a_job(connection, process.pid):  # stopped inside its wait, not between two
            return
        process.signal(signal.SIGCONT)
