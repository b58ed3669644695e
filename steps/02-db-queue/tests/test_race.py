"""The jobs table's race, its fixes and their limits, on every backend.

Each test runs the stage's own claim and worker code against a real database (SQLite, and
PostgreSQL and MariaDB where their servers answer) and the real fake Twitter.
"""

import multiprocessing
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from lab.runtime.process import wait_until

STRATEGIES = ["naive", "locked", "locked-claim", "skip-locked", "atomic"]


def settings_for(url, twitter, strategy, **changes):
    from twitpic.worker import WorkerSettings

    return WorkerSettings(database_url=url, twitter_api_url=twitter.api_url, strategy=strategy, **changes)


def job_rows(url):
    from twitpic.db import Database

    db = Database(url)
    try:
        return db.all("SELECT id, status, attempts, run_after, locked_until, last_error"
                      " FROM tweet_jobs ORDER BY id")
    finally:
        db.close()


def posted(twitter, text):
    return len(twitter.tweets_starting_with([text])[text])


# -- the race, forced ------------------------------------------------------------------------


# Which strategies let the second worker into the window while the first is in it. Under the
# global lock the second waits for the lock before it can even read: it never gets in.
BOTH_IN_THE_WINDOW = {"naive": True, "atomic": True, "skip-locked": True, "locked": False, "locked-claim": False}
LOCKED_OUT_SECONDS = 0.5  # how long the first worker waits in the window for one that is locked out


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_two_workers_in_the_race_window(database_url, twitter, strategy, enqueue, paused_worker):
    """Both workers read the job before either claims it: only `naive` then posts it twice."""
    from twitpic.claims import StrategyNotSupported
    from twitpic.worker import Worker

    enqueue(database_url, ["one job"])
    ready = threading.Barrier(2, timeout=10)  # both connected, both about to claim: never broken
    window = threading.Barrier(2, timeout=10 if BOTH_IN_THE_WINDOW[strategy] else LOCKED_OUT_SECONDS)
    met = []  # for each worker: did both meet in the window?

    def in_the_window():
        try:
            window.wait()
            met.append(True)
        except threading.BrokenBarrierError:
            met.append(False)

    def one_worker(_):
        worker = paused_worker(settings_for(database_url, twitter, strategy), once(in_the_window))
        try:
            ready.wait()
            return worker.run_once()
        finally:
            worker.close()

    if strategy == "skip-locked" and database_url.startswith("sqlite"):
        worker = Worker(settings_for(database_url, twitter, strategy))
        with pytest.raises(StrategyNotSupported, match="needs PostgreSQL or MariaDB"):
            worker.run_once()
        worker.close()
        return
    with ThreadPoolExecutor(2) as pool:
        claimed = list(pool.map(one_worker, range(2)))

    # The race really was run: both workers in the window at once, or one kept out by the lock.
    assert met == [BOTH_IN_THE_WINDOW[strategy]] * 2
    expected = 2 if strategy == "naive" else 1
    assert claimed.count(True) == expected, f"{claimed.count(True)} of the two workers claimed the one job"
    assert posted(twitter, "one job") == expected, f"the tweet was posted {posted(twitter, 'one job')} times"
    assert [row["status"] for row in job_rows(database_url)] == ["done"]


def once(pause):
    """`pause` at a job worker's first read only: a worker that lost the race may read again."""
    calls = []

    def first_time_only():
        if not calls:
            calls.append(1)
            pause()

    return first_time_only


def test_an_atomic_claim_lost_to_another_worker_takes_the_next_job_at_once(
    database_url, twitter, enqueue, paused_worker,
):
    """Two job workers read the same job; the one whose UPDATE changes no row reads again and
    claims the next job, rather than sleeping a poll while jobs wait."""
    enqueue(database_url, ["first", "second"])
    ready, window = threading.Barrier(2, timeout=10), threading.Barrier(2, timeout=10)

    def one_worker(_):
        worker = paused_worker(settings_for(database_url, twitter, "atomic"), once(window.wait))
        try:
            ready.wait()
            return worker.run_once()
        finally:
            worker.close()

    with ThreadPoolExecutor(2) as pool:
        claimed = list(pool.map(one_worker, range(2)))

    assert claimed == [True, True], "the worker that lost the claim found no job while one was waiting"
    times = (posted(twitter, "first"), posted(twitter, "second"))
    assert times == (1, 1), f"the two tweets were posted {times[0]} and {times[1]} times"
    assert [row["status"] for row in job_rows(database_url)] == ["done", "done"]


def test_an_atomic_claim_takes_only_the_job_it_read(database_url, enqueue):
    """Two job workers claimed a job each and died; both leases have run out. Each claim takes
    one of the two jobs. The claim's condition is an OR: written into the UPDATE unbracketed, as
    `id = ? AND <ready> OR <lease ran out>`, it would claim every job whose lease ran out."""
    from twitpic.claims import claim_atomic, claim_naive
    from twitpic.db import Database

    enqueue(database_url, ["first", "second"])
    db = Database(database_url)
    try:
        long_ago = time.time() - 60
        for _ in range(2):
            claim_naive(db, long_ago, 1.0)  # then killed: its lease ran out 59 s ago
        now = time.time()
        claims = [claim_atomic(db, now, 30.0) for _ in range(3)]
    finally:
        db.close()
    taken = [job and job.text.split()[0] for job in claims]
    assert taken == ["first", "second", None], f"three claims took {taken}: each must take one job"
    assert [row["status"] for row in job_rows(database_url)] == ["claimed", "claimed"]


def test_a_worker_starved_of_the_global_lock_waits_on_and_never_dies(
    tmp_path, twitter, monkeypatch, caplog, enqueue,
):
    """SQLite's waiting is not fair: held across every post, the lock can pass one worker by for
    longer than SQLite's busy timeout. That worker must keep waiting, not die of it."""
    from twitpic import dialects
    from twitpic.db import Database, init_db
    from twitpic.worker import Worker

    monkeypatch.setattr(dialects, "SQLITE_BUSY_TIMEOUT", 0.1)
    url = f"sqlite:///{tmp_path / 'queue.sqlite3'}"
    init_db(url)
    enqueue(url, ["starved"])
    others = Database(url)
    others.execute("BEGIN IMMEDIATE")  # the other workers hold the lock, long past the busy timeout

    def starved_worker():
        worker = Worker(settings_for(url, twitter, "locked"))
        try:
            return worker.run_once()
        finally:
            worker.close()

    try:
        with ThreadPoolExecutor(1) as pool:
            claimed = pool.submit(starved_worker)
            waits = "still waiting for the database's write lock"
            wait_until(lambda: claimed.done() or caplog.text.count(waits) >= 3, timeout=10,
                       what="the worker waiting past the busy timeout, three times")
            others.execute("COMMIT")
            assert claimed.result(timeout=10) is True
    finally:
        others.close()
    assert posted(twitter, "starved") == 1


@pytest.mark.parametrize("strategy", ["locked", "locked-claim"])
def test_only_the_claim_lock_lets_a_second_worker_post_while_the_first_waits_on_twitter(
    tmp_path, twitter, monkeypatch, caplog, enqueue, strategy,
):
    """Held across the post, the global lock makes every other job worker wait for Twitter too;
    held only for the claim, a second job worker claims the next job and posts beside the first."""
    from twitpic import dialects
    from twitpic.db import init_db
    from twitpic.worker import Worker

    monkeypatch.setattr(dialects, "SQLITE_BUSY_TIMEOUT", 0.1)  # a worker kept waiting says so soon
    url = f"sqlite:///{tmp_path / 'queue.sqlite3'}"
    init_db(url)
    enqueue(url, ["first job", "second job"])
    twitter.control(mode="hang")

    def one_worker():
        worker = Worker(settings_for(url, twitter, strategy, post_timeout=30))
        try:
            return worker.run_once()
        finally:
            worker.close()

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(one_worker)
        wait_until(lambda: twitter.stats()["held"] == 1, timeout=10, what="the first post, hanging")
        second = pool.submit(one_worker)
        if strategy == "locked-claim":
            wait_until(lambda: twitter.stats()["held"] == 2, timeout=10, what="both posts hanging side by side")
        else:
            wait_until(lambda: "still waiting for the database's write lock" in caplog.text, timeout=10,
                       what="the second worker waiting for the lock")
            assert twitter.stats()["held"] == 1  # waiting for the lock, so not posting
        twitter.control(mode="up")
        assert first.result(timeout=30) is True and second.result(timeout=30) is True
    assert posted(twitter, "first job") == 1 and posted(twitter, "second job") == 1
    assert [row["status"] for row in job_rows(url)] == ["done", "done"]


def test_on_postgresql_the_global_lock_holds_the_whole_table_against_every_writer(
    postgresql_url, twitter, enqueue,
):
    """PostgreSQL's global lock is the table's, as MySQL's and SQLite's are: while one job worker
    holds it through a hung post, the next job worker waits for it, and so does a web request
    adding a job. Once it is let go, the waiting job worker takes the next job."""
    from twitpic.db import Database
    from twitpic.worker import Worker

    enqueue(postgresql_url, ["first job", "second job"])
    twitter.control(mode="hang")

    def one_worker():
        worker = Worker(settings_for(postgresql_url, twitter, "locked", post_timeout=30))
        try:
            return worker.run_once()
        finally:
            worker.close()

    def waiting_for_a_lock() -> int:
        db = Database(postgresql_url)
        try:
            return db.one("SELECT COUNT(*) AS n FROM pg_stat_activity"
                          " WHERE datname = current_database() AND wait_event_type = 'Lock'")["n"]
        finally:
            db.close()

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(one_worker)
        wait_until(lambda: twitter.stats()["held"] == 1, timeout=10, what="the first post, hanging")
        second = pool.submit(one_worker)
        comment = pool.submit(enqueue, postgresql_url, ["third job"])  # what a web request does
        wait_until(lambda: waiting_for_a_lock() == 2, timeout=10,
                   what="the second worker and the web request waiting for the lock")
        assert twitter.stats()["held"] == 1 and not comment.done()
        twitter.control(mode="up")
        assert first.result(timeout=30) is True
        assert second.result(timeout=30) is True  # it claimed a job when it got the lock
        comment.result(timeout=30)
    assert posted(twitter, "first job") == 1 and posted(twitter, "second job") == 1
    assert sorted(row["status"] for row in job_rows(postgresql_url)) == ["done", "done", "pending"]


# -- the PostgreSQL trap ----------------------------------------------------------------------

# One statement looks atomic, but the subquery picks the row before the row lock is taken: a
# second transaction waiting on that lock re-checks only `id = <what its subquery picked>`.
# --8<-- [start:trap]
TRAP = (
    "UPDATE tweet_jobs SET status = 'claimed' WHERE id = ("
    "SELECT id FROM tweet_jobs WHERE status = 'pending' ORDER BY id LIMIT 1 {lock}) {recheck} RETURNING id"
)
# --8<-- [end:trap]


@pytest.mark.parametrize(
    "lock, recheck, claims",
    [("", "", 2), ("", "AND status = 'pending'", 1), ("FOR UPDATE SKIP LOCKED", "", 1)],
    ids=["subquery-only", "with-status-recheck", "with-skip-locked"],
)
def test_the_postgresql_trap(postgresql_url, lock, recheck, claims, enqueue):
    import psycopg

    from lab.runtime.process import wait_until

    enqueue(postgresql_url, ["trap"])
    statement = TRAP.format(lock=lock, recheck=recheck)
    first = psycopg.connect(postgresql_url)  # a transaction, left open: it holds the row lock
    second = psycopg.connect(postgresql_url, autocommit=True)
    watcher = psycopg.connect(postgresql_url, autocommit=True)
    try:
        first_rows = first.execute(statement).fetchall()
        second_rows = []
        thread = threading.Thread(target=lambda: second_rows.extend(second.execute(statement).fetchall()))
        thread.start()
        # Let the second statement reach the row lock (or finish, when it skips the locked row).
        pid = second.info.backend_pid
        wait_until(
            lambda: not thread.is_alive()
            or watcher.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()[0] == "Lock",
            timeout=10,
            what="the second claim waits for the row lock",
        )
        first.commit()
        thread.join(timeout=10)
    finally:
        for conn in (first, second, watcher):
            conn.close()

    assert len(first_rows) + len(second_rows) == claims


# -- leases ----------------------------------------------------------------------------------


def _claim_and_die(url, lease):
    """A worker process that claims a job and dies before posting it (think: kill -9, OOM)."""
    from twitpic.claims import claim_naive
    from twitpic.db import Database

    claim_naive(Database(url), time.time(), lease)
    os._exit(1)


@pytest.mark.parametrize("lease, recovered", [(None, False), (0.3, True)], ids=["no-lease", "lease"])
def test_a_worker_killed_after_its_claim(database_url, twitter, lease, recovered, enqueue):
    from twitpic.worker import Worker

    enqueue(database_url, ["stranded?"])
    dying = multiprocessing.get_context("fork").Process(target=_claim_and_die, args=(database_url, lease))
    dying.start()
    dying.join(timeout=30)
    assert dying.exitcode == 1
    assert job_rows(database_url)[0]["status"] == "claimed"

    time.sleep(0.4)  # past the lease, when there is one
    worker = Worker(settings_for(database_url, twitter, "atomic", lease=lease))
    why = ("the job of the dead job worker was not claimed again after its lease" if recovered
           else "a claim with no lease ran out, and the job was claimed again")
    try:
        assert worker.run_once() is recovered, why
    finally:
        worker.close()
    assert posted(twitter, "stranded?") == (1 if recovered else 0)
    assert job_rows(database_url)[0]["status"] == ("done" if recovered else "claimed")


def test_a_claim_is_not_taken_while_its_lease_runs(database_url, twitter, enqueue):
    """A job worker that is alive and within its lease keeps its job: another finds nothing to claim."""
    from twitpic.claims import claim_atomic
    from twitpic.db import Database
    from twitpic.worker import Worker

    enqueue(database_url, ["still mine"])
    db = Database(database_url)
    try:
        assert claim_atomic(db, time.time(), 30.0) is not None
    finally:
        db.close()
    worker = Worker(settings_for(database_url, twitter, "atomic", lease=30.0))
    try:
        assert worker.run_once() is False, "a claim made a moment ago, with 30 s to run, was taken"
    finally:
        worker.close()
    assert posted(twitter, "still mine") == 0
    assert job_rows(database_url)[0]["status"] == "claimed"


def test_a_job_worker_whose_lease_ran_out_cannot_undo_what_the_next_one_did(database_url, twitter, enqueue):
    """A slow job worker's lease runs out; another job worker claims the job and posts it. The
    slow one then reports how its own try ended: a failure must not send the posted job back to
    the queue (a second post), and a success must not overwrite the first. Its claim's token is
    no longer the job's, so neither changes anything."""
    from twitpic import jobs
    from twitpic.claims import claim_atomic
    from twitpic.db import Database
    from twitpic.worker import Worker

    enqueue(database_url, ["fenced"])
    db = Database(database_url)
    try:
        slow = claim_atomic(db, time.time(), 0.3)
        wait_until(lambda: time.time() > job_rows(database_url)[0]["locked_until"], timeout=10,
                   what="the slow job worker's lease run out")
        worker = Worker(settings_for(database_url, twitter, "atomic", lease=30.0))
        try:
            assert worker.run_once() is True  # claimed again, and posted
        finally:
            worker.close()

        outcome = jobs.mark_failed_attempt(db, slow, "Twitter timed out", time.time(), 8, 1.0, 60.0)
        assert outcome == jobs.TAKEN_OVER
        assert jobs.mark_done(db, slow, "999") is False
    finally:
        db.close()
    [job] = job_rows(database_url)
    assert (job["status"], job["last_error"]) == ("done", None)
    assert posted(twitter, "fenced") == 1


# -- retries ---------------------------------------------------------------------------------


def test_a_failed_post_is_retried_later_then_kept_as_failed(database_url, twitter, enqueue):
    from twitpic.worker import Worker

    enqueue(database_url, ["retry me"])
    twitter.set_mode("down")
    worker = Worker(settings_for(database_url, twitter, "atomic", max_attempts=2, retry_base=1.0))
    try:
        started = time.time()
        assert worker.run_once() is True
        [job] = job_rows(database_url)
        first = (job["status"], job["attempts"], job["last_error"])
        assert first == ("pending", 1, "Twitter answered 503"), f"after 1 of 2 attempts the job is {first}"
        assert job["run_after"] >= started + 1.0  # not before the retry delay
        assert worker.run_once() is False  # too early to try again

        wait_until(lambda: time.time() > job["run_after"], timeout=10, what="the retry delay")
        assert worker.run_once() is True  # the second and last attempt
        [job] = job_rows(database_url)
        assert (job["status"], job["attempts"]) == ("failed", 2), f"after its last attempt: {job['status']}"

        twitter.set_mode("up")
        assert worker.run_once() is False  # failed jobs stay for inspection, not retried forever
        assert job_rows(database_url)[0]["status"] == "failed"
    finally:
        worker.close()
    assert posted(twitter, "retry me") == 0


def test_retry_delays_grow_and_are_capped():
    from twitpic.jobs import retry_delay

    assert [retry_delay(n, base=1.0, cap=10.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
