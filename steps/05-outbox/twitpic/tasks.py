"""The job a job worker runs for each tweet: post it once, whatever happens around it.

A run that fails for a passing reason (Twitter down, hung or busy, the breaker open, a rate limit)
returns RQ's `Retry`: RQ runs the job again after the interval the job chose, and these tries are
counted apart from the crash retries the job was enqueued with. A run that can never succeed
raises PoisonJob, and RQ moves the job to the failed registry once its crash retries are spent.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass

import redis
from rq import Retry, get_current_job

from .breaker import CircuitBreaker, CircuitOpen
from .db import Database
from .queue import connect, retry_interval
from .settings import settings_from_environment
from .twitter import DuplicateTweet, RateLimited, TweetRejected, TwitterError, post_tweet

log = logging.getLogger("twitpic.tasks")

# Tries for a passing failure, before the job gives up to the failed registry: enough for a
# day-long outage, met as a breaker that cools down for 20 s at a time.
PASSING_FAILURE_TRIES = 5000


class PoisonJob(Exception):
    """This job cannot succeed: it ends in the failed registry, where a person can look at it."""


def breaker_for(connection, settings: dict) -> CircuitBreaker:
    return CircuitBreaker(
        connection, "twitter", threshold=settings["BREAKER_THRESHOLD"], window=settings["BREAKER_WINDOW"],
        cooldown=settings["BREAKER_COOLDOWN"],
        # The trial lasts as long as its call may: by then it has ended, one way or another.
        trial=settings["TWITTER_CONNECT_TIMEOUT"] + settings["TWITTER_READ_TIMEOUT"] + 1,
    )


# --8<-- [start:job]
def post_tweet_job(tweet_id: str, username: str, text: str) -> str | Retry | None:
    settings = settings_from_environment()
    db = Database(settings["DATABASE_URL"], settings["DATABASE_TIMEOUT"])
    connection = connect(settings)  # Redis: the rate limits and the breaker
    try:
        user = db.one("SELECT twitter_token FROM users WHERE username = ?", (username,))
        if user is None:
            raise PoisonJob(f"no Twitter token for {username!r}")
        run = reserve(db, tweet_id, lease=settings["JOB_TIMEOUT"])
        if run.posted:
            return None  # posted before: this is a second run, or a second job, of the same tweet
        if run.held_for:
            return retry_later(settings, wait=run.held_for)  # another run is posting it right now
        try:
            wait = rate_limit_left(connection, username)
            if wait:
                raise RateLimited("this user's tweets wait out a rate limit", wait)
            breaker = breaker_for(connection, settings)
            trial = breaker.check()  # open: Twitter is left alone, and the job waits for the cool-down
            try:
                twitter_id = post_tweet(
                    settings["TWITTER_API_URL"], user["twitter_token"], text,
                    (settings["TWITTER_CONNECT_TIMEOUT"], settings["TWITTER_READ_TIMEOUT"]),
                )
            except DuplicateTweet:
                twitter_id = None  # posted before, by a run that died before marking it
            except TweetRejected as error:
                breaker.record_success(trial)  # Twitter answered: it works, it just will not take this one
                raise PoisonJob(str(error)) from error
            except RateLimited as error:
                breaker.record_success(trial)  # Twitter answered: it works, this user just posts too much
                limit_user(connection, username, error.retry_after)  # every job worker waits it out
                raise
            except TwitterError:
                breaker.record_failure(trial)  # down, hung or overloaded: it says nothing about this tweet
                raise
            mark_posted(db, run, twitter_id)  # first: whatever fails next, the tweet is known as posted
            breaker.record_success(trial)
        except CircuitOpen:
            release(db, run)
            return retry_later(settings, wait=breaker.seconds_left())
        except RateLimited as error:
            release(db, run)
            return retry_later(settings, wait=error.retry_after)
        except TwitterError:
            release(db, run)
            return retry_later(settings)
        except (PoisonJob, redis.RedisError):  # poison, or Redis gone: RQ's crash retries take over
            release(db, run)
            raise
        return twitter_id
    finally:
        connection.close()
        db.close()
# --8<-- [end:job]


def retry_later(settings: dict, wait: float | None = None) -> Retry:
    """Ask RQ to run this job again: after `wait` seconds, when something said how long to wait
    (the breaker, a rate limit, another run), stretched by up to a fifth so that the jobs that
    waited together come back one after another; else after the job's next backoff interval."""
    if wait is None:
        job = get_current_job()
        tries = (job.number_of_retries or 0) + 1 if job is not None else 1
        return Retry(max=PASSING_FAILURE_TRIES, interval=[retry_interval(settings, tries)])
    return Retry(max=PASSING_FAILURE_TRIES, interval=[max(wait, 0.001) * random.uniform(1.0, 1.2)])


# --8<-- [start:rate_limit]
def rate_limit_key(username: str) -> str:
    return f"twitter:rate-limited:{username}"  # a rate limit belongs to the user's credentials


def limit_user(connection, username: str, seconds: float) -> None:
    connection.set(rate_limit_key(username), 1, px=max(1, int(seconds * 1000)))


def rate_limit_left(connection, username: str) -> float:
    return max(0, connection.pttl(rate_limit_key(username))) / 1000
# --8<-- [end:rate_limit]


# --8<-- [start:record]
@dataclass(frozen=True)
class Run:
    tweet_id: str
    holder: str  # this run's mark on the reservation
    posted: bool = False  # the tweet was posted before
    held_for: float = 0.0  # another run holds it, for this many seconds more


def reserve(db: Database, tweet_id: str, lease: float) -> Run:
    """Reserve the tweet for this run for `lease` seconds (the database's clock), unless it was
    posted already or another run holds it. A lease longer than the job's timeout outlasts any
    run that took it: RQ ends a run at its timeout."""
    holder = uuid.uuid4().hex
    now = db.dialect.epoch_now
    conflict = " ON CONFLICT DO NOTHING" if db.dialect.name == "postgresql" else ""
    added = db.execute(
        f"{db.dialect.insert_ignore} INTO posted_tweets (tweet_id, holder, held_until)"
        f" VALUES (?, ?, {now} + ?){conflict}",
        (tweet_id, holder, lease),
    ).rowcount
    if added != 1:  # a row exists: taken over only if its run's lease ran out (that run crashed)
        added = db.execute(
            f"UPDATE posted_tweets SET holder = ?, held_until = {now} + ?"
            f" WHERE tweet_id = ? AND posted_at IS NULL AND held_until < {now}",
            (holder, lease, tweet_id),
        ).rowcount
    if added == 1:
        return Run(tweet_id, holder)
    row = db.one(f"SELECT posted_at, held_until - {now} AS seconds_left FROM posted_tweets WHERE tweet_id = ?",
                 (tweet_id,))
    if row is None:  # released a moment ago by the run that held it
        return Run(tweet_id, holder, held_for=0.001)
    if row["posted_at"] is not None:
        return Run(tweet_id, holder, posted=True)
    return Run(tweet_id, holder, held_for=max(0.001, float(row["seconds_left"])))


def mark_posted(db: Database, run: Run, twitter_id: str | None) -> None:
    db.execute(
        "UPDATE posted_tweets SET twitter_id = ?, posted_at = CURRENT_TIMESTAMP, holder = NULL, held_until = NULL"
        " WHERE tweet_id = ? AND posted_at IS NULL",
        (twitter_id, run.tweet_id),
    )


def release(db: Database, run: Run) -> None:
    """Not posted this time: give the reservation up at once, so that the next run need not wait."""
    db.execute("DELETE FROM posted_tweets WHERE tweet_id = ? AND holder = ?", (run.tweet_id, run.holder))
# --8<-- [end:record]


__all__ = ["post_tweet_job", "CircuitOpen", "TwitterError", "PoisonJob"]
