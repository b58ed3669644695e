"""The background worker: take a tweet off the queue with a reliable read, post it, confirm it.

    python -m twitpic.worker --workers 4

runs four worker processes side by side. Each loops on `get tweets/close/open/t=<ms>`: confirm
the previous item and open the next in one round trip. An item stays open (not gone) until its
worker confirms it, so a worker that dies mid-post gives its item back to the queue.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from pymemcache.exceptions import MemcacheError

from . import queue
from .db import Database
from .settings import settings_from_environment
from .twitter import (
    DuplicateTweet,
    TweetRejected,
    TwitterError,
    TwitterUnavailable,
    post_tweet,
)

log = logging.getLogger("twitpic.worker")

DONE, RETRY = "done", "retry"


@dataclass
class WorkerSettings:
    """Durations are in seconds."""

    database_url: str
    twitter_api_url: str
    queue_address: tuple[str, int]
    post_timeout: float = 10.0
    wait: float = 1.0  # how long one `get` waits for an item to arrive
    max_attempts: int = 20  # tries of one message before it is parked on tweets_failed
    retry_base: float = 1.0
    retry_cap: float = 60.0


def retry_delay(failures: int, base: float, cap: float) -> float:
    """1, 2, 4, 8... times `base` seconds, never more than `cap`."""
    return min(base * 2 ** (failures - 1), cap)


class Worker:
    def __init__(self, settings: WorkerSettings):
        self.settings = settings
        self.queue = queue.connect(settings.queue_address, settings.wait)
        self.db = Database(settings.database_url)
        self.holding = False  # an open read to confirm with the next get
        self.failures_in_a_row = 0

    # --8<-- [start:run_once]
    def run_once(self) -> bool:
        """Confirm the previous item, take the next one and handle it; False when none came."""
        wait_ms = int(self.settings.wait * 1000)
        options = "close/open" if self.holding else "open"
        raw = self.queue.get(f"{queue.TWEETS}/{options}/t={wait_ms}")
        self.holding = False
        if raw is None:
            return False
        if self.handle(raw) == RETRY:
            self.queue.get(f"{queue.TWEETS}/abort")  # back to the head of the queue, for later
            self.failures_in_a_row += 1
            time.sleep(retry_delay(self.failures_in_a_row, self.settings.retry_base, self.settings.retry_cap))
        else:
            self.holding = True  # confirmed by the next get, in the same round trip
            self.failures_in_a_row = 0
        return True
    # --8<-- [end:run_once]

    # --8<-- [start:handle]
    def handle(self, raw: bytes) -> str:
        try:
            message = queue.decode(raw)
        except ValueError as error:
            return self.give_up(raw, str(error))
        if self.already_posted(message.id):
            return DONE  # delivered again after a worker died: it was posted and recorded before
        user = self.db.one("SELECT twitter_token FROM users WHERE username = ?", (message.user,))
        if user is None:
            return self.give_up(raw, f"no Twitter token for {message.user!r}")
        try:
            twitter_id = post_tweet(
                self.settings.twitter_api_url, user["twitter_token"], message.text, self.settings.post_timeout
            )
        except DuplicateTweet:
            twitter_id = None  # posted before, by a worker that died before recording it
        except TweetRejected as error:
            return self.give_up(raw, str(error))
        except TwitterUnavailable as error:
            log.warning("tweet %s: %s; waiting for Twitter", message.id, error)
            return RETRY  # an outage is not this tweet's fault: it waits, however long, and is not parked
        except TwitterError as error:
            attempts = self.count_failed_attempt(message.id)
            log.warning("tweet %s attempt %s: %s", message.id, attempts, error)
            if attempts >= self.settings.max_attempts:
                return self.give_up(raw, f"{error} (after {attempts} attempts)")
            return RETRY
        self.record_posted(message.id, twitter_id)
        log.info("tweet %s posted as %s", message.id, twitter_id or "a duplicate Twitter refused")
        return DONE

    def count_failed_attempt(self, tweet_id: str) -> int:
        """One more failed try of this tweet, by any worker; how many so far. One worker at a time
        holds a message (its read is open), so the update-or-insert cannot race with another."""
        counted = self.db.execute(
            "UPDATE tweet_attempts SET attempts = attempts + 1 WHERE tweet_id = ?", (tweet_id,))
        if counted.rowcount == 0:
            self.db.execute("INSERT INTO tweet_attempts (tweet_id, attempts) VALUES (?, 1)", (tweet_id,))
        return self.db.one("SELECT attempts FROM tweet_attempts WHERE tweet_id = ?", (tweet_id,))["attempts"]

    def already_posted(self, tweet_id: str) -> bool:
        return self.db.one("SELECT 1 AS yes FROM posted_tweets WHERE tweet_id = ?", (tweet_id,)) is not None

    def record_posted(self, tweet_id: str, twitter_id: str | None) -> None:
        ignore = self.db.dialect.insert_ignore
        conflict = " ON CONFLICT DO NOTHING" if self.db.dialect.name == "postgresql" else ""
        self.db.execute(
            f"{ignore} INTO posted_tweets (tweet_id, twitter_id) VALUES (?, ?){conflict}", (tweet_id, twitter_id)
        )

    def give_up(self, raw: bytes, error: str) -> str:
        """A poison message: park it on tweets_failed with its error, so it cannot block the queue."""
        parked = json.dumps({"error": error, "item": raw.decode("utf-8", "replace")}).encode()
        if not self.queue.set(queue.FAILED, parked):
            raise MemcacheError("tweets_failed refused the item")
        log.error("parked a message on %s: %s", queue.FAILED, error)
        return DONE
    # --8<-- [end:handle]

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        while not should_stop():
            try:
                self.run_once()
            except (OSError, MemcacheError) as error:
                # The queue server went away: our open read is rolled back there. Reconnect.
                log.warning("queue unreachable (%s); retrying", error)
                self.holding = False
                self.queue.close()
                time.sleep(min(self.settings.wait, 1.0))

    def close(self) -> None:
        try:
            if self.holding:
                self.queue.get(f"{queue.TWEETS}/close")
        finally:
            self.queue.close()
            self.db.close()


# -- the command line: N worker processes and a small supervisor -------------------------------


# --8<-- [start:stop]
def _work(settings: WorkerSettings) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker[{os.getpid()}] %(message)s")
    worker = Worker(settings)
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True  # finish the item in hand, confirm it, then leave

    signal.signal(signal.SIGTERM, stop)
    try:
        worker.run(should_stop=lambda: stopping)
    finally:
        worker.close()
# --8<-- [end:stop]


def main(argv: list[str] | None = None) -> int:
    env = settings_from_environment()
    parser = argparse.ArgumentParser(prog="python -m twitpic.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--post-timeout", type=float, default=env["TWITTER_TIMEOUT"],
                        help="seconds to wait for Twitter")
    parser.add_argument("--max-attempts", type=int, default=20, help="tries before a message is parked")
    parser.add_argument("--wait", type=float, default=env["QUEUE_WAIT"], help="seconds one get waits for an item")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    settings = WorkerSettings(
        database_url=env["DATABASE_URL"],
        twitter_api_url=env["TWITTER_API_URL"],
        queue_address=env["KESTREL_ADDRESS"],
        post_timeout=args.post_timeout,
        wait=args.wait,
        max_attempts=args.max_attempts,
        retry_base=env["RETRY_FIRST"],
        retry_cap=env["RETRY_CAP"],
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
    log.info("%d workers on queue %s", count, queue.TWEETS)
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
