"""The background worker: claim a job from the table, post the tweet, record the outcome.

    python -m twitpic.worker --strategy naive --workers 4

runs four worker processes side by side, each polling the table. The web request never waits
for Twitter again; the workers do, and they can afford to.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import claims, jobs
from .db import Database
from .settings import settings_from_environment
from .twitter import TwitterError, post_tweet

log = logging.getLogger("twitpic.worker")


@dataclass
class WorkerSettings:
    """Durations are in seconds."""

    database_url: str
    twitter_api_url: str
    strategy: str = "naive"
    lease: float | None = 30.0  # None: claims never run out
    post_timeout: float = 10.0
    max_attempts: int = 8
    retry_base: float = 1.0
    retry_cap: float = 60.0
    poll_interval: float = 0.5


class Worker:
    def __init__(self, settings: WorkerSettings):
        if settings.strategy not in claims.STRATEGIES:
            raise ValueError(f"unknown strategy {settings.strategy!r}: one of {', '.join(claims.STRATEGIES)}")
        self.settings = settings
        self.db = Database(settings.database_url)

    # --8<-- [start:run_once]
    def run_once(self) -> bool:
        """Claim one job and deliver it; False when there was nothing to claim."""
        now = time.time()
        if self.settings.strategy == "locked":
            with claims.global_lock(self.db):  # held while the tweet is posted
                job = claims.claim_under_lock(self.db, now, self.settings.lease)
                if job is not None:
                    self.deliver(job)
        elif self.settings.strategy == "locked-claim":
            with claims.global_lock(self.db):  # held for the claim only
                job = claims.claim_under_lock(self.db, now, self.settings.lease)
            if job is not None:
                self.deliver(job)
        else:
            claim = claims.CLAIMS[self.settings.strategy]
            job = claim(self.db, now, self.settings.lease)
            if job is not None:
                self.deliver(job)
        return job is not None

    def deliver(self, job: jobs.Job) -> None:
        user = self.db.one("SELECT twitter_token FROM users WHERE username = ?", (job.username,))
        try:
            if user is None:
                raise TwitterError(f"no Twitter token for {job.username!r}")
            tweet_id = post_tweet(
                self.settings.twitter_api_url, user["twitter_token"], job.text, self.settings.post_timeout
            )
        except TwitterError as error:
            outcome = jobs.mark_failed_attempt(
                self.db, job, str(error), time.time(), self.settings.max_attempts,
                self.settings.retry_base, self.settings.retry_cap,
            )
            log.warning("job %s attempt %s: %s; now %s", job.id, job.attempts, error, outcome)
        else:
            if jobs.mark_done(self.db, job, tweet_id):
                log.info("job %s posted as tweet %s", job.id, tweet_id)
            else:  # posted twice: the price of a lease (see claims.py)
                log.warning("job %s posted as tweet %s, but its claim ran out and another job worker "
                            "took it over", job.id, tweet_id)
    # --8<-- [end:run_once]

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        while not should_stop():
            if not self.run_once():
                time.sleep(self.settings.poll_interval)  # polling: the table cannot wake us

    def close(self) -> None:
        self.db.close()


# -- the command line: N worker processes and a small supervisor -------------------------------


def _work(settings: WorkerSettings) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker[{os.getpid()}] %(message)s")
    worker = Worker(settings)
    try:
        worker.run()
    finally:
        worker.close()


def main(argv: list[str] | None = None) -> int:
    env = settings_from_environment()
    parser = argparse.ArgumentParser(prog="python -m twitpic.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--strategy", choices=claims.STRATEGIES, default="naive")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--lease", type=float, default=env["LEASE"], help="seconds a claim lasts; 0 for claims that never run out"
    )
    parser.add_argument("--post-timeout", type=float, default=env["TWITTER_TIMEOUT"],
                        help="seconds to wait for Twitter")
    parser.add_argument("--max-attempts", type=int, default=8, help="tries before a job is marked failed")
    parser.add_argument("--poll", type=float, default=env["POLL"], help="seconds between looks at an empty table")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    settings = WorkerSettings(
        database_url=env["DATABASE_URL"],
        twitter_api_url=env["TWITTER_API_URL"],
        strategy=args.strategy,
        lease=args.lease if args.lease > 0 else None,
        post_timeout=args.post_timeout,
        max_attempts=args.max_attempts,
        retry_base=env["RETRY_FIRST"],
        retry_cap=env["RETRY_CAP"],
        poll_interval=args.poll,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(message)s")
    return supervise(settings, args.workers)


def supervise(settings: WorkerSettings, count: int) -> int:
    """Keep `count` worker processes running until SIGTERM or Ctrl-C; replace any that die."""
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Each worker a forked copy of this process, which runs no thread, so forking is safe. Said
    # here, because Python's default differs: forkserver on Linux from 3.14, spawn on macOS, and
    # both start a helper process of their own beside the workers.
    fork = multiprocessing.get_context("fork")
    processes = [fork.Process(target=_work, args=(settings,)) for _ in range(count)]
    for process in processes:
        process.start()
    log.info("%d workers, strategy %s", count, settings.strategy)
    while not stopping:
        time.sleep(0.1)
        for index, process in enumerate(processes):
            if not process.is_alive() and not stopping:
                log.warning("worker %s died (exit %s); starting another", process.pid, process.exitcode)
                processes[index] = fork.Process(target=_work, args=(settings,))
                processes[index].start()
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
