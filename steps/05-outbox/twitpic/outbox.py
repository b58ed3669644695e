"""The outbox: each tweet to post is a row of the site's own database, written in the same
transaction as the comment or photo it is about. The relay (relay.py) moves the rows onto RQ's
queue and watches each one until its tweet is posted.

A row goes through three states:

- unsent (`sent_at` NULL): saved with its comment; the relay has not queued it yet;
- sent (`sent_at` set): queued as the job named after it; the relay looks for the job in Redis
  now and then, and queues it again if Redis has lost it (a restart, a failover);
- gone: the row is deleted once the posted-tweets record says the tweet is posted, or once RQ
  has given its job up for good (the failed registry, where a person looks).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass

from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job, JobStatus

from .db import Database
from .queue import enqueue_tweet, job_id_for

log = logging.getLogger("twitpic.outbox")

BATCH = 100  # rows the relay queues per transaction
CHECK_BATCH = 500  # sent rows the relay looks up in Redis per check


# --8<-- [start:add]
def add_tweet(db: Database, tweet_id: str, username: str, text: str) -> None:
    """Stage the tweet in the outbox. Call it inside the transaction that saves what the tweet is
    about: the two are committed together, or neither is."""
    db.execute(
        f"INSERT INTO outbox (tweet_id, username, text, created_at) VALUES (?, ?, ?, {db.dialect.epoch_now})",
        (tweet_id, username, text),
    )
# --8<-- [end:add]


# --8<-- [start:send]
def send_new(db: Database, queue: Queue, settings: dict) -> int:
    """Queue up to BATCH unsent rows, oldest first, each as the job named after its tweet, and mark
    them sent. Returns how many it took. Where the database can skip rows another relay has
    locked, several relays share the work; a second relay is safe anywhere, because RQ refuses a
    second job with the same name (`unique=True`)."""
    lock = " FOR UPDATE SKIP LOCKED" if db.dialect.skip_locked else ""
    now = db.dialect.epoch_now
    # SQLite locks the whole file: there, each statement commits on its own, and one relay runs.
    with db.transaction() if db.dialect.skip_locked else nullcontext():
        rows = db.all(
            "SELECT tweet_id, username, text FROM outbox WHERE sent_at IS NULL"
            f" ORDER BY created_at LIMIT {BATCH}{lock}"
        )
        for row in rows:
            try:
                enqueue_tweet(queue, settings, row["tweet_id"], row["username"], row["text"])
            except DuplicateJobError:
                pass  # queued already: by this relay before it died, or by another relay
            # If Redis fails half-way, the batch is not marked; the next try queues its rows again,
            # and RQ refuses the ones it already has.
            db.execute(f"UPDATE outbox SET sent_at = {now} WHERE tweet_id = ?", (row["tweet_id"],))
    return len(rows)
# --8<-- [end:send]


# --8<-- [start:check]
def forget_posted(db: Database) -> int:
    """Delete the rows whose tweets are posted: their work is done."""
    return db.execute(
        "DELETE FROM outbox WHERE sent_at IS NOT NULL AND EXISTS (SELECT 1 FROM posted_tweets"
        " WHERE posted_tweets.tweet_id = outbox.tweet_id AND posted_tweets.posted_at IS NOT NULL)"
    ).rowcount


def check_sent(db: Database, queue: Queue, after: str = "") -> tuple[int, str]:
    """Look up, in Redis, the jobs of up to CHECK_BATCH sent rows whose tweet_id comes after
    `after`. A job Redis no longer has is lost (a Redis restart, a failover): its row is marked
    unsent, and the relay queues it again. A job RQ gave up on is left to the failed registry.
    Returns how many rows were sent again, and where the next check starts ("" for the top)."""
    rows = db.all(
        "SELECT tweet_id FROM outbox WHERE sent_at IS NOT NULL AND tweet_id > ? ORDER BY tweet_id LIMIT ?",
        (after, CHECK_BATCH),
    )
    tweet_ids = [row["tweet_id"] for row in rows]
    if not tweet_ids:
        return 0, ""
    jobs = Job.fetch_many([job_id_for(tweet_id) for tweet_id in tweet_ids], connection=queue.connection,
                          serializer=queue.serializer)
    lost = 0
    for tweet_id, job in zip(tweet_ids, jobs, strict=True):
        if job is None:
            # Gone from Redis, unless it was posted and forgotten meanwhile: the row says which.
            lost += db.execute(
                "UPDATE outbox SET sent_at = NULL WHERE tweet_id = ? AND sent_at IS NOT NULL AND NOT EXISTS"
                " (SELECT 1 FROM posted_tweets WHERE posted_tweets.tweet_id = outbox.tweet_id"
                " AND posted_tweets.posted_at IS NOT NULL)",
                (tweet_id,),
            ).rowcount
        elif job.get_status(refresh=False) == JobStatus.FAILED:
            log.warning("tweet %s: its job failed for good; it waits in RQ's failed registry", tweet_id)
            db.execute("DELETE FROM outbox WHERE tweet_id = ?", (tweet_id,))
    if lost:
        log.warning("%d queued tweets were not in Redis any more: queuing them again", lost)
    return lost, (tweet_ids[-1] if len(tweet_ids) == CHECK_BATCH else "")
# --8<-- [end:check]


@dataclass(frozen=True)
class OutboxStatus:
    unsent: int  # saved, not queued yet
    sent: int  # queued, tweet not posted yet
    lag: float  # seconds the oldest unsent row has waited: how far the relay is behind


def outbox_status(db: Database) -> OutboxStatus:
    row = db.one(
        "SELECT SUM(CASE WHEN sent_at IS NULL THEN 1 ELSE 0 END) AS unsent,"
        " SUM(CASE WHEN sent_at IS NULL THEN 0 ELSE 1 END) AS sent,"
        f" MIN(CASE WHEN sent_at IS NULL THEN created_at END) AS oldest, {db.dialect.epoch_now} AS now"
        " FROM outbox"
    )
    lag = float(row["now"]) - float(row["oldest"]) if row["oldest"] is not None else 0.0
    return OutboxStatus(int(row["unsent"] or 0), int(row["sent"] or 0), round(max(lag, 0.0), 3))
