"""The `tweets` queue on Redis, through RQ: each tweet is a job that a worker runs.

Jobs are stored as JSON (not pickle: a job is data, and anything that can write to Redis could
otherwise make a worker run code of its choosing). Each tweet gets an id when it is queued, and
its job is named after it, so the same tweet cannot be queued twice.
"""

from __future__ import annotations

import logging
import random
import uuid

import redis
from flask import Flask, current_app, g
from rq import Queue, Retry
from rq.serializers import JSONSerializer

log = logging.getLogger(__name__)

TWEETS = "tweets"
JOB = "twitpic.tasks.post_tweet_job"  # the function a worker runs, by name
JOB_TIMEOUT = 20  # seconds: RQ kills a job's work horse after this, whatever it is doing


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)


def tweets_queue(connection: redis.Redis) -> Queue:
    return Queue(TWEETS, connection=connection, serializer=JSONSerializer)


def job_id_for(tweet_id: str) -> str:
    return f"tweet-{tweet_id}"


def job_timeout(time_scale: float) -> int:
    return max(1, round(JOB_TIMEOUT * time_scale))  # RQ counts in whole seconds


# --8<-- [start:retry]
def retry_policy(time_scale: float, attempts: int = 10, cap: float = 60.0) -> Retry:
    """Up to `attempts` retries, 1, 2, 4... seconds apart (capped), each stretched by a random 0.5-1.5
    so that a thousand jobs that failed together do not all come back together."""
    intervals = [min(2**n, cap) * random.uniform(0.5, 1.5) * time_scale for n in range(attempts)]
    return Retry(max=attempts, interval=intervals)
# --8<-- [end:retry]


# --8<-- [start:enqueue]
def enqueue_tweet(
    queue: Queue, username: str, text: str, time_scale: float = 1.0, tweet_id: str | None = None,
) -> str:
    """Queue the tweet as a job named after its id; its id. Raises DuplicateJobError if queued already."""
    tweet_id = tweet_id or uuid.uuid4().hex
    queue.enqueue(
        JOB,
        tweet_id,
        username,
        text,
        job_id=job_id_for(tweet_id),
        unique=True,  # a second job with this id is refused, atomically, by Redis
        retry=retry_policy(time_scale),
        job_timeout=job_timeout(time_scale),  # nothing holds a worker forever
        failure_ttl=7 * 24 * 3600,  # failed jobs stay a week for a person to look at and requeue
    )
    return tweet_id


def queue_tweet(username: str, text: str) -> str | None:
    """From a web request: queue the tweet, or log it as lost if Redis is unreachable."""
    try:
        return enqueue_tweet(get_queue(), username, text, current_app.config["TIME_SCALE"])
    except redis.RedisError as error:
        log.error("tweet lost, the queue is unreachable: %s", error)
        return None
# --8<-- [end:enqueue]


def get_queue() -> Queue:
    if "queue" not in g:
        g.queue = tweets_queue(connect(current_app.config["REDIS_URL"]))
    return g.queue


def close_queue(exception=None) -> None:
    queue = g.pop("queue", None)
    if queue is not None:
        queue.connection.close()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_queue)
