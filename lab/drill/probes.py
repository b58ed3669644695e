"""How much work a stage has waiting: read from the stage's own queue, the way an operator would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lab.kestrel.stats import read_stats


def backlog_probe(processes: set[str], env: dict, twitter):
    """A function returning the stage's backlog now: jobs waiting, or calls stuck in flight."""
    if "relay" in processes:  # stage 05: every tweet not yet posted has its outbox row
        return counter(Path(env["TWITPIC_DATA_DIR"]) / "twitpic.sqlite3", OUTBOX_NOT_POSTED)
    if "redis" in processes:
        import redis
        from rq import Queue

        from lab.testing.rq import jobs_in_flight

        queue = Queue("tweets", connection=redis.Redis.from_url(env["REDIS_URL"], socket_timeout=2))

        def rq_backlog() -> int:
            # A job a killed job worker had taken counts too: the drill waits for RQ to run it.
            return jobs_in_flight(queue)

        return rq_backlog
    if "kestrel" in processes:

        def kestrel_backlog() -> int:  # items in the queue, and items open (being posted)
            stats = read_stats("127.0.0.1", int(env["KESTREL_PORT"]))
            return int(stats.get("queue_tweets_items", 0)) + int(stats.get("queue_tweets_open_transactions", 0))

        return kestrel_backlog
    if "worker" in processes:  # stage 02: rows not yet done or failed
        return counter(Path(env["TWITPIC_DATA_DIR"]) / "twitpic.sqlite3",
                       "SELECT COUNT(*) FROM tweet_jobs WHERE status IN ('pending', 'claimed')")

    def calls_in_flight() -> int:  # stage 01 has no queue: its backlog is web workers stuck on Twitter
        return twitter.state()["held"]

    return calls_in_flight


# Every tweet of stage 05 not posted yet has its outbox row: not queued, queued, running, waiting to
# be tried again, or queued in a Redis that lost it.
OUTBOX_NOT_POSTED = (
    "SELECT COUNT(*) FROM outbox WHERE NOT EXISTS (SELECT 1 FROM posted_tweets"
    " WHERE posted_tweets.tweet_id = outbox.tweet_id AND posted_tweets.posted_at IS NOT NULL)"
)


def counter(database: Path, query: str):
    """A function returning the count `query` reads from the stage's SQLite database, read-only:
    0 while its tables are not there yet."""

    def count() -> int:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
            try:
                [(found,)] = db.execute(query).fetchall()
            except sqlite3.OperationalError:  # the tables are not there yet
                return 0
        return found

    return count
