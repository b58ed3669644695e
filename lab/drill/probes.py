"""How much work a stage has waiting: read from the stage's own queue, the way an operator would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lab.kestrel.stats import read_stats


def backlog_probe(processes: set[str], env: dict, twitter):
    """A function returning the stage's backlog now: jobs waiting, or calls stuck in flight."""
    if "redis" in processes:
        import redis
        from rq import Queue

        from lab.testing.rq import jobs_in_flight

        queue = Queue("tweets", connection=redis.Redis.from_url(env["REDIS_URL"], socket_timeout=2))

        def rq_backlog() -> int:
            # A job a killed job worker had taken counts too: the drill waits for RQ to run it.
            return jobs_in_flight(queue)

        if "relay" in processes:  # stage 05: every tweet not yet posted has its outbox row
            return outbox_backlog(Path(env["TWITPIC_DATA_DIR"]) / "twitpic.sqlite3")
        return rq_backlog
    if "kestrel" in processes:

        def kestrel_backlog() -> int:  # items in the queue, and items open (being posted)
            stats = read_stats("127.0.0.1", int(env["KESTREL_PORT"]))
            return int(stats.get("queue_tweets_items", 0)) + int(stats.get("queue_tweets_open_transactions", 0))

        return kestrel_backlog
    if "worker" in processes:
        database = Path(env["TWITPIC_DATA_DIR"]) / "twitpic.sqlite3"

        def table_backlog() -> int:  # rows not yet done or failed
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
                try:
                    [(count,)] = db.execute(
                        "SELECT COUNT(*) FROM tweet_jobs WHERE status IN ('pending', 'claimed')"
                    ).fetchall()
                except sqlite3.OperationalError:  # the table is not there yet
                    return 0
            return count

        return table_backlog

    def calls_in_flight() -> int:  # stage 01 has no queue: its backlog is web workers stuck on Twitter
        return twitter.state()["held"]

    return calls_in_flight



def outbox_backlog(database: Path):
    """A function returning how many tweets in the outbox are not posted yet: not queued, queued,
    running or waiting to be tried again, or queued in a Redis that lost them."""

    def not_posted() -> int:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
            try:
                [(count,)] = db.execute(
                    "SELECT COUNT(*) FROM outbox WHERE NOT EXISTS (SELECT 1 FROM posted_tweets"
                    " WHERE posted_tweets.tweet_id = outbox.tweet_id AND posted_tweets.posted_at IS NOT NULL)"
                ).fetchall()
            except sqlite3.OperationalError:  # the tables are not there yet
                return 0
        return count

    return not_posted
