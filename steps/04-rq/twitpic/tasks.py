"""The job a worker runs for each tweet: post it once, whatever happens around it."""

from __future__ import annotations

import logging

from rq import get_current_job

from .breaker import CircuitBreaker, CircuitOpen
from .db import Database
from .queue import JOB_TIMEOUT, job_timeout
from .settings import settings_from_environment
from .twitter import (
    DuplicateTweet,
    TweetRejected,
    TwitterError,
    TwitterUnavailable,
    post_tweet,
)

log = logging.getLogger("twitpic.tasks")

# Seconds a call to Twitter may take, well inside the job's timeout: a hung call ends here, as a
# Twitter failure that the breaker counts, not as the job being killed.
CALL_TIMEOUT = JOB_TIMEOUT / 2


class PoisonJob(Exception):
    """This job cannot succeed; retrying will not help, so it goes straight to the failed registry."""


def breaker_for(connection, settings: dict) -> CircuitBreaker:
    scale = settings["TIME_SCALE"]
    # Five failures in a minute open it: a hung call takes 10 s to fail, so four workers need two
    # rounds of calls to fail five times, and a busy machine makes each round longer.
    return CircuitBreaker(
        connection, "twitter", threshold=5, window=60 * scale, cooldown=20 * scale,
        trial=job_timeout(scale),  # by then the trial's job has ended, one way or another
    )


# --8<-- [start:job]
def post_tweet_job(tweet_id: str, username: str, text: str) -> str | None:
    job = get_current_job()
    settings = settings_from_environment()
    db = Database(settings["DATABASE_URL"])
    try:
        if already_posted(db, tweet_id):
            return None  # run again after a crash: it was posted and recorded before
        user = db.one("SELECT twitter_token FROM users WHERE username = ?", (username,))
        if user is None:
            no_retry(job)
            raise PoisonJob(f"no Twitter token for {username!r}")
        breaker = breaker_for(job.connection, settings)
        try:
            breaker.check()  # open: Twitter is left alone, and the job is retried later
        except CircuitOpen:
            give_back_retry(job)  # waiting out an outage, however long, costs no attempt
            raise
        try:
            twitter_id = post_tweet(
                settings["TWITTER_API_URL"], user["twitter_token"], text, CALL_TIMEOUT * settings["TIME_SCALE"]
            )
        except DuplicateTweet:
            twitter_id = None  # posted before, by a worker that died before recording it
        except TweetRejected as error:
            breaker.record_success()  # Twitter answered: it works, it just will not take this one
            no_retry(job)
            raise PoisonJob(str(error)) from error
        except TwitterUnavailable:
            breaker.record_failure()
            give_back_retry(job)  # down, hung or overloaded: that says nothing about this tweet
            raise  # RQ tries it again after the job's interval
        except TwitterError:
            breaker.record_failure()
            raise  # RQ retries it, after the job's next interval, and counts the try
        breaker.record_success()
        record_posted(db, tweet_id, twitter_id)
        return twitter_id
    finally:
        db.close()
# --8<-- [end:job]


def give_back_retry(job) -> None:
    """RQ spends one retry on this failure; add it back first."""
    if job is not None and job.retries_left is not None:
        job.retries_left += 1


def no_retry(job) -> None:
    """Spend the job's remaining retries: RQ moves it straight to the failed registry."""
    if job is not None:
        job.retries_left = 0


# --8<-- [start:record]
def already_posted(db: Database, tweet_id: str) -> bool:
    return db.one("SELECT 1 AS yes FROM posted_tweets WHERE tweet_id = ?", (tweet_id,)) is not None


def record_posted(db: Database, tweet_id: str, twitter_id: str | None) -> None:
    conflict = " ON CONFLICT DO NOTHING" if db.dialect.name == "postgresql" else ""
    db.execute(
        f"{db.dialect.insert_ignore} INTO posted_tweets (tweet_id, twitter_id) VALUES (?, ?){conflict}",
        (tweet_id, twitter_id),
    )
# --8<-- [end:record]


__all__ = ["post_tweet_job", "CircuitOpen", "TwitterError", "PoisonJob"]
