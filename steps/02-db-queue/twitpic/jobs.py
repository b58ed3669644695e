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


# --8<-- [start:enqueue]
def enqueue_tweet(db: Database, username: str, text: str) -> int:
    """Add a tweet to post. Call it inside the transaction that saves the comment or photo."""
    return db.insert("INSERT INTO tweet_jobs (username, text) VALUES (?, ?)", (username, text))
# --8<-- [end:enqueue]


def mark_done(db: Database, job: Job, tweet_id: str) -> None:
    db.execute(
        "UPDATE tweet_jobs SET status = 'done', tweet_id = ?, locked_until = NULL WHERE id = ?",
        (tweet_id, job.id),
    )


# --8<-- [start:retry]
def retry_delay(attempts: int, base: float, cap: float) -> float:
    """1, 2, 4, 8... times `base` seconds, never more than `cap`."""
    return min(base * 2 ** (attempts - 1), cap)


def mark_failed_attempt(
    db: Database, job: Job, error: str, now: float, max_attempts: int, base: float, cap: float
) -> str:
    """Back to `pending` after a growing delay, or `failed` (kept, never deleted) after the last try."""
    if job.attempts >= max_attempts:
        db.execute(
            "UPDATE tweet_jobs SET status = 'failed', last_error = ?, locked_until = NULL WHERE id = ?",
            (error[:300], job.id),
        )
        return "failed"
    db.execute(
        "UPDATE tweet_jobs SET status = 'pending', last_error = ?, locked_until = NULL, run_after = ?"
        " WHERE id = ?",
        (error[:300], now + retry_delay(job.attempts, base, cap), job.id),
    )
    return "pending"
# --8<-- [end:retry]
