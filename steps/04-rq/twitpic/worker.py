"""The background workers: RQ workers on the `tweets` queue, and a small supervisor.

    python -m twitpic.worker --workers 4

runs four RQ workers side by side, each what
`rq worker --serializer json --worker-class twitpic.worker.TweetWorker tweets` runs, and RQ's
scheduler in a process of its own, which moves retries back onto the queue when they are due. RQ
forks a fresh process for every job (the "work horse"), so a crash in one job cannot harm the
worker.
While the shared circuit breaker is open, the workers take no job at all: new tweets wait in the
queue, where `rq info` shows them, until Twitter is worth calling again.

What RQ does not do by default: when a whole worker is killed (SIGKILL, out of memory), its job
stays "started" until the job's heartbeat runs out (at least 60 s) and a maintenance pass (every
10 minutes by default) finds it abandoned. The wait is on purpose: the work horse runs in a process
group of its own, so it outlives its worker and may still be posting the tweet; only after the
job's timeout can RQ be sure it has ended. The supervisor here knows at once that a worker died,
so it ends that worker's work horse first, waits until it is gone, and then hands the job to RQ's
abandoned-job handling straight away: retried if the job has retries left, failed otherwise.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import sys
import time

import psutil
from rq import Worker
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from . import queue
from .settings import settings_from_environment
from .tasks import breaker_for

log = logging.getLogger("twitpic.worker")


def worker_name(pid: int) -> str:
    return f"tweets-worker-{pid}"


def horse_key(worker: str) -> str:
    return f"twitpic:horse:{worker}"  # "pid start-time" of the work horse running this worker's job


# --8<-- [start:pause]
class TweetWorker(Worker):
    """An RQ worker that takes no job while the shared breaker is open: the jobs wait in the queue."""

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        breaker = breaker_for(self.connection, settings_from_environment())
        while breaker.is_open():
            self.set_state("suspended")  # what `rq info` and /status show meanwhile
            self.heartbeat()  # still alive, just waiting
            time.sleep(min(1.0, max(0.05, breaker.seconds_left())))
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
# --8<-- [end:pause]

    # --8<-- [start:horse]
    def main_work_horse(self, job, queue):
        """In the work horse, before the job: write down who runs it, then check the worker lives."""
        me = psutil.Process()
        self.connection.set(horse_key(self.name), f"{me.pid} {me.create_time()}")
        if os.getppid() != self.pid:
            os._exit(1)  # the worker died a moment ago; the supervisor hands the job back
        super().main_work_horse(job, queue)

    def execute_job(self, job, queue):
        try:
            super().execute_job(job, queue)  # fork the horse, wait for it to finish
        finally:
            self.connection.delete(horse_key(self.name))
    # --8<-- [end:horse]


def _work(redis_url: str, maintenance_interval: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop
    connection = queue.connect(redis_url)
    worker = TweetWorker(
        [queue.TWEETS],
        connection=connection,
        serializer=JSONSerializer,
        name=worker_name(os.getpid()),
        maintenance_interval=maintenance_interval,
    )
    # SIGTERM makes an RQ worker finish the job in hand, then leave.
    worker.work(with_scheduler=False, logging_level="INFO")


def _schedule(redis_url: str) -> None:
    """RQ's scheduler, in a process of its own: it moves retries back onto the queue when due.

    Not `work(with_scheduler=True)`: that forks the scheduler from a worker, with copies of the
    worker's Redis connections. Killed, that worker would leave its waiting BLMOVE open in Redis's
    eyes, held by the scheduler's copy, and the next job queued would go to a reader that is gone.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    connection = queue.connect(redis_url)
    RQScheduler([queue.TWEETS], connection=connection, serializer=JSONSerializer).work()  # until SIGTERM


# --8<-- [start:recover]
def end_horse_of(dead_worker: str, connection) -> None:
    """Kill a dead worker's work horse, if it has one, and wait until it is gone.

    The horse wrote its pid before it began, and checked its worker was alive after that. So
    either its pid is here, or it found its worker dead and left without running the job.
    """
    written = connection.get(horse_key(dead_worker))
    if written is None:
        return
    pid, started = written.decode().split()
    try:
        horse = psutil.Process(int(pid))
        if horse.create_time() != float(started):
            raise psutil.NoSuchProcess(horse.pid)  # that horse is long gone; its pid is someone else's
        horse.kill()
        while horse.status() != psutil.STATUS_ZOMBIE:  # a zombie runs no code: it is gone
            time.sleep(0.01)
    except psutil.NoSuchProcess:
        pass
    connection.delete(horse_key(dead_worker))


def recover_jobs_of(dead_worker: str, redis_url: str) -> list[str]:
    """Hand a dead worker's running jobs to RQ's abandoned-job handling now, not minutes later."""
    connection = queue.connect(redis_url)
    end_horse_of(dead_worker, connection)  # first: one job must never run twice at once
    registry = StartedJobRegistry(queue=queue.tweets_queue(connection))
    executions = [key.decode() for key in connection.smembers(f"rq:worker:{dead_worker}:executions")]
    if executions:
        connection.zadd(registry.key, {key: 0 for key in executions}, xx=True)  # expired long ago
        registry.cleanup()  # retried if it has retries left, else moved to the failed registry
    dead = Worker.find_by_key(Worker.redis_worker_namespace_prefix + dead_worker, connection=connection)
    if dead is not None:
        dead.register_death()  # no longer listed by `rq info` as a worker, busy with that job
    connection.close()
    return [key.split(":", 1)[0] for key in executions]
# --8<-- [end:recover]


# --8<-- [start:stranded]
STRANDED_AFTER = 5.0  # seconds: a live worker starts the job it took within milliseconds


def taken_not_started(connection) -> dict[str, bytes | None]:
    """Jobs a worker took off the queue (RQ keeps them on an intermediate list) and has not started,
    each with the moment it was enqueued: a job queued again later is another take of it."""
    tweets = queue.tweets_queue(connection)
    taken = [job_id for job_id in tweets.intermediate_queue.get_job_ids()
             if job_id not in tweets.started_job_registry]
    return {job_id: connection.hget(f"rq:job:{job_id}", "enqueued_at") for job_id in taken}


def requeue_stranded(suspects: dict[str, bytes | None], redis_url: str) -> list[str]:
    """Put back at the head of the queue the suspects still taken and not started, by the same take:
    a dead worker took them. They never ran, so this costs them no retry."""
    connection = queue.connect(redis_url)
    tweets = queue.tweets_queue(connection)
    now_taken = taken_not_started(connection)
    stranded = sorted(job_id for job_id, enqueued in suspects.items() if now_taken.get(job_id, False) == enqueued)
    for job_id in stranded:
        with connection.pipeline() as pipe:  # MULTI/EXEC: off the intermediate list, back in the queue
            pipe.lrem(tweets.intermediate_queue_key, 1, job_id)
            pipe.lpush(tweets.key, job_id)
            pipe.execute()
    connection.close()
    return stranded
# --8<-- [end:stranded]


def main(argv: list[str] | None = None) -> int:
    env = settings_from_environment()
    parser = argparse.ArgumentParser(prog="python -m twitpic.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="RQ worker processes (default 2)")
    parser.add_argument(
        "--maintenance-interval", type=int, default=600, help="seconds between RQ's registry clean-ups"
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(message)s")
    return supervise(env["REDIS_URL"], args.workers, args.maintenance_interval)


def supervise(redis_url: str, count: int, maintenance_interval: int) -> int:
    """Keep `count` worker processes running until SIGTERM or Ctrl-C; replace any that die."""
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    work = (redis_url, maintenance_interval)
    processes = [multiprocessing.Process(target=_work, args=work) for _ in range(count)]
    scheduler = multiprocessing.Process(target=_schedule, args=(redis_url,))
    for process in [*processes, scheduler]:
        process.start()
    log.info("%d RQ workers on queue %s, and RQ's scheduler", count, queue.TWEETS)
    # A worker killed between taking a job and starting it leaves the job on RQ's intermediate list,
    # where RQ looks only minutes later. Which job it took is not recorded, so note the suspects
    # now and put back those still not started a few seconds later.
    suspects: dict[str, tuple[float, bytes | None]] = {}  # job id -> (when to look again, its take)
    while not stopping:
        time.sleep(0.1)
        for index, process in enumerate(processes):
            if not process.is_alive() and not stopping:
                log.warning("worker %s died (exit %s); starting another", process.pid, process.exitcode)
                recovered = recover_jobs_of(worker_name(process.pid), redis_url)
                if recovered:
                    log.warning("handed its jobs back to RQ: %s", ", ".join(recovered))
                with queue.connect(redis_url) as connection:
                    for job_id, enqueued in taken_not_started(connection).items():
                        suspects.setdefault(job_id, (time.monotonic() + STRANDED_AFTER, enqueued))
                processes[index] = multiprocessing.Process(target=_work, args=work)
                processes[index].start()
        if not scheduler.is_alive() and not stopping:
            log.warning("the scheduler died (exit %s); starting another", scheduler.exitcode)
            scheduler = multiprocessing.Process(target=_schedule, args=(redis_url,))
            scheduler.start()
        due = {job_id: take for job_id, (when, take) in suspects.items() if when <= time.monotonic()}
        if due:
            for job_id in due:
                del suspects[job_id]
            stranded = requeue_stranded(due, redis_url)
            if stranded:
                log.warning("put back jobs a dead worker took but never started: %s", ", ".join(stranded))
    for process in [*processes, scheduler]:
        process.terminate()
    for process in [*processes, scheduler]:
        process.join(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
