"""The `tweets` queue on Redis, through RQ: each tweet is a job that a job worker runs. The relay
(relay.py) queues them, from the outbox; a web request only reads the queue, for the status page.

Jobs are stored as JSON (not pickle: a job is data, and anything that can write to Redis could
otherwise make a job worker run code of its choosing). Each job is named after its tweet's key, so
the same tweet cannot be queued twice.
"""

from __future__ import annotations

import random

import redis
from flask import Flask, current_app
from redis.backoff import NoBackoff
from redis.retry import Retry as CommandRetry
from redis.sentinel import Sentinel, SentinelManagedConnection
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

TWEETS = "tweets"
JOB = "twitpic.tasks.post_tweet_job"  # the function a job worker runs, by name
CRASH_RETRIES = 2  # runs after the first when a run crashes: its work horse killed, or out of time


# --8<-- [start:sentinel_connection]
class SentinelConnection(SentinelManagedConnection):
    """redis-py's connection to the primary the Sentinels name, with two of redis-py 8.1's faults
    mended, each in a few lines:

    - It closes itself when a read is interrupted, as every other redis-py connection does. 8.1's
      keeps the reply it never read (redis-py pull request 4292): the next command gets that reply,
      or waits behind it. An idle RQ job worker, asked to stop, interrupts its wait for the next
      job: its last writes then waited until the process manager killed it.
    - A command tried again after its connection was lost asks the Sentinels for the primary. 8.1's
      goes back to the address it had (redis-py issue 3874): after a failover, the dead primary's,
      for as long as the retries last. A job worker waiting for its next job then waited a minute
      on a server that was gone, while jobs queued on the new primary waited for it."""

    def read_response(self, *args, disconnect_on_error: bool = True, **kwargs):
        return super().read_response(*args, disconnect_on_error=disconnect_on_error, **kwargs)

    def send_packed_command(self, command, check_health: bool = True):
        if not self.is_connected:  # lost, and tried again: once per try of the command's Retry
            self.connect_to(self.connection_pool.get_master_address())
        super().send_packed_command(command, check_health=check_health)
# --8<-- [end:sentinel_connection]


def connect(settings: dict) -> redis.Redis:
    """A Redis client whose every command waits at most REDIS_TIMEOUT seconds, without hidden
    retries (redis-py retries a command three times by default): one that fails, fails fast.
    With Sentinels, the client asks them for the primary each time it connects, so that after a
    failover its next connection goes to the new one (redis-py's `Sentinel`)."""
    options = {
        "socket_connect_timeout": settings["REDIS_TIMEOUT"],
        "socket_timeout": settings["REDIS_TIMEOUT"],
        "retry": CommandRetry(NoBackoff(), 0),
    }
    if settings["REDIS_SENTINELS"]:
        sentinels = Sentinel(settings["REDIS_SENTINELS"], sentinel_kwargs=options)  # asking them, too
        return sentinels.master_for(settings["REDIS_SENTINEL_MASTER"], connection_class=SentinelConnection,
                                    **options)
    return redis.Redis.from_url(settings["REDIS_URL"], **options)


def tweets_queue(connection: redis.Redis) -> Queue:
    return Queue(TWEETS, connection=connection, serializer=JSONSerializer)


def job_id_for(tweet_id: str) -> str:
    return f"tweet-{tweet_id}"


# --8<-- [start:retry]
def retry_interval(settings: dict, tries: int) -> float:
    """Seconds before the next try, after `tries` tries failed: RETRY_FIRST, then twice as long
    each time up to RETRY_CAP, stretched by a random 0.5-1.5 so that a thousand jobs that failed
    together do not all come back together."""
    return min(settings["RETRY_FIRST"] * 2 ** (tries - 1), settings["RETRY_CAP"]) * random.uniform(0.5, 1.5)
# --8<-- [end:retry]


# --8<-- [start:enqueue]
def enqueue_tweet(queue: Queue, settings: dict, tweet_id: str, username: str, text: str) -> Job:
    """Queue the tweet as a job named after it. Raises DuplicateJobError if it is queued already."""
    return queue.enqueue(
        JOB,
        tweet_id,
        username,
        text,
        job_id=job_id_for(tweet_id),
        unique=True,  # a second job with this id is refused, atomically, by Redis
        # A run that crashes is run again; a run that fails tells RQ itself when to try again (tasks.py).
        retry=Retry(max=CRASH_RETRIES, interval=[retry_interval(settings, n) for n in (1, 2)]),
        job_timeout=settings["JOB_TIMEOUT"],  # nothing holds a job worker forever (settings.py)
        failure_ttl=7 * 24 * 3600,  # failed jobs stay a week for a person to look at and requeue
    )
# --8<-- [end:enqueue]


def get_queue() -> Queue:
    return current_app.extensions["twitpic.queue"]


def init_app(app: Flask) -> None:
    # One Redis client for the whole process, shared by its requests (it keeps a pool of
    # connections); it connects at its first command, not now.
    app.extensions["twitpic.queue"] = tweets_queue(connect(app.config))


# --8<-- [start:durable]
def what_could_lose_jobs(connection: redis.Redis) -> list[str]:
    """What, in this Redis's settings, would lose queued jobs: none, when it keeps an append-only
    file and never evicts a key to make room."""
    try:
        config = connection.config_get("appendonly", "maxmemory-policy")
    except redis.ResponseError:  # a managed Redis may refuse CONFIG
        return ["its settings cannot be read (CONFIG GET): check that it keeps an append-only file "
                "and that its maxmemory-policy is noeviction"]
    problems = []
    if config.get("appendonly") != "yes":
        problems.append("it keeps no append-only file: a restart loses every queued job")
    if config.get("maxmemory-policy") != "noeviction":
        problems.append(f"its maxmemory-policy is {config.get('maxmemory-policy')}: when full, it deletes jobs")
    return problems
# --8<-- [end:durable]
