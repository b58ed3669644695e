"""Five ways for a job worker to claim the next job from the tweet_jobs table.

Each reads the next job, then claims it. Between the two is the window where two job workers can
pick the same row; the tests pause every worker there to force the race every time.

A claim is a lease: `locked_until` says when it runs out. A worker that dies leaves its job
`claimed`; once the lease has run out the job is claimable again, so nothing is stranded. The
price: a worker that is merely slow past its lease can see its job posted twice.
With `lease=None` claims never run out, and a dead worker's job is stranded for good.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager

from . import dialects
from .db import Database
from .jobs import Job

STRATEGIES = ("naive", "locked", "locked-claim", "skip-locked", "atomic")

# Ready to run, or claimed by a worker whose lease has run out.
CLAIMABLE = "(status = 'pending' AND run_after <= ?) OR (status = 'claimed' AND locked_until < ?)"
NEXT_JOB = f"SELECT id, username, text, attempts FROM tweet_jobs WHERE {CLAIMABLE} ORDER BY id LIMIT 1"
# Each claim writes a token of its own: the job's fencing token (jobs.py).
CLAIM = (
    "UPDATE tweet_jobs SET status = 'claimed', attempts = attempts + 1, locked_until = ?, claimed_by = ?"
    " WHERE id = ?"
)


class StrategyNotSupported(ValueError):
    pass


def _job(row, claim: str) -> Job:
    return Job(row["id"], row["username"], row["text"], row["attempts"] + 1, claim)


def new_claim() -> str:
    return uuid.uuid4().hex


def _lease_end(now: float, lease: float | None) -> float | None:
    return None if lease is None else now + lease


# --8<-- [start:naive]
def claim_naive(db: Database, now: float, lease: float | None) -> Job | None:
    """Twitpic's first code: read the oldest job, then mark it claimed. Two workers can read the same one."""
    row = db.one(NEXT_JOB, (now, now))
    if row is None:
        return None
    claim = new_claim()
    db.execute(CLAIM, (_lease_end(now, lease), claim, row["id"]))
    return _job(row, claim)
# --8<-- [end:naive]


# --8<-- [start:skip_locked]
def claim_skip_locked(db: Database, now: float, lease: float | None) -> Job | None:
    """Lock the row while claiming it; other workers skip locked rows instead of waiting."""
    if not db.dialect.skip_locked:
        raise StrategyNotSupported(f"skip-locked needs PostgreSQL or MariaDB/MySQL, not {db.dialect.name}")
    with db.transaction():
        row = db.one(NEXT_JOB + " FOR UPDATE SKIP LOCKED", (now, now))
        if row is None:
            return None
        claim = new_claim()
        db.execute(CLAIM, (_lease_end(now, lease), claim, row["id"]))
    return _job(row, claim)
# --8<-- [end:skip_locked]


# --8<-- [start:atomic]
def claim_atomic(db: Database, now: float, lease: float | None) -> Job | None:
    """Read a candidate, then claim it with one UPDATE that checks it is still claimable."""
    while True:
        row = db.one(NEXT_JOB, (now, now))
        if row is None:
            return None
        claim = new_claim()
        claimed = db.execute(CLAIM + f" AND ({CLAIMABLE})", (_lease_end(now, lease), claim, row["id"], now, now))
        if claimed.rowcount == 1:
            return _job(row, claim)
        # Another worker claimed it between our SELECT and our UPDATE: jobs are waiting, try the next.
# --8<-- [end:atomic]


# --8<-- [start:locked]
@contextmanager
def global_lock(db: Database):
    """One job worker at a time holds the queue: the fix the case study names and turns down.
    `locked` holds it from the claim until the tweet is posted; `locked-claim` only for the claim."""
    if db.dialect is dialects.MYSQL:
        db.execute("LOCK TABLES tweet_jobs WRITE, users READ")
        try:
            yield
        finally:
            db.execute("UNLOCK TABLES")
    elif db.dialect is dialects.SQLITE:
        # The database's single write lock. A worker starved of it waits on: it must never die.
        with db.transaction("BEGIN IMMEDIATE", wait=True):
            yield
    else:  # PostgreSQL: the whole table, against every other writer; plain reads go on
        with db.transaction():
            db.execute("LOCK TABLE tweet_jobs IN EXCLUSIVE MODE")
            yield


def claim_under_lock(db: Database, now: float, lease: float | None) -> Job | None:
    """Only call inside `global_lock`."""
    row = db.one(NEXT_JOB, (now, now))
    if row is None:
        return None
    claim = new_claim()
    db.execute(CLAIM, (_lease_end(now, lease), claim, row["id"]))
    return _job(row, claim)
# --8<-- [end:locked]


CLAIMS = {"naive": claim_naive, "skip-locked": claim_skip_locked, "atomic": claim_atomic}
