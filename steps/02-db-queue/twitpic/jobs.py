"""The tweet_jobs table as a queue: add a job, and record how it ended."""

from __future__ import annotations

from dataclasses import dataclass

from .db import Database


@dataclass(frozen=True)
class Job:
    id: int
    username: str
    text: str
    attempts: int  # including the one just claimed
    claim: str  # this claim's token: only the job worker holding the job's current claim records its end


TAKEN_OVER = "taken over"  # the claim ran out, and another job worker holds the job now


# --8<-- [start:enqueue]
def enqueue_tweet(db: Database, username: str, text: str) -> int:
    """Add a tweet to post. Call it inside the transaction that saves the comment or photo."""
    return db.insert("INSERT INTO tweet_jobs (username, text) VALUES (?, ?)", (username, text))
# --8<-- [end:enqueue]


# --8<-- [start:done]
def mark_done(db: Database, job: Job, tweet_id: str) -> bool:
    """Record the tweet; False if the job is no longer this claim's, and nothing changed."""
    done = db.execute(
        "UPDATE tweet_jobs SET status = 'done', tweet_id = ?, locked_until = NULL WHERE id = ? AND claimed_by = ?",
        (tweet_id, job.id, job.claim),
    )
    return done.rowcount == 1
# --8<-- [end:done]


# --8<-- [start:retry]
def retry_delay(attempts: int, base: float, cap: float) -> float:
    """1, 2, 4, 8... times `base` seconds, never more than `cap`."""
    return min(base * 2 ** (attempts - 1), cap)


def mark_failed_attempt(
    db: Database, job: Job, error: str, now: float, max_attempts: int, base: float, cap: float
) -> str:
    """Back to `pending` after a growing delay, or `failed` (kept, never deleted) after the last try.
    TAKEN_OVER, and nothing changed, if the job is no longer this claim's."""
    if job.attempts >= max_attempts:
        status, run_after = "failed", now
    else:
        status, run_after = "pending", now + retry_delay(job.attempts, base, cap)
    changed = db.execute(
        "UPDATE tweet_jobs SET status = ?, last_error = ?, locked_until = NULL, run_after = ?"
        " WHERE id = ? AND claimed_by = ?",
        (status, error[:300], run_after, job.id, job.claim),
    )
    return status if changed.rowcount == 1 else TAKEN_OVER
# --8<-- [end:retry]
