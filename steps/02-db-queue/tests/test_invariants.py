"""The six invariants every stage is held to. Stage 02 fixes three and breaks one.

A strict xfail must fail, and for its stated reason only: if one of these ever passed in this
stage, the run would turn red, and so would a failure anywhere outside the `with invariant():`
block that checks the promise itself.
"""

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from lab.runtime.process import process_calling, wait_until
from lab.testing.invariants import InvariantBroken, invariant


def test_comment_answers_fast_while_twitter_is_slow(site, twitter, photo):
    twitter.control(latency_ms=[1000, 1000])  # a normal day: one second per call

    started = time.monotonic()
    response = site.comment(photo, "first!")
    elapsed = time.monotonic() - started

    assert response.status_code == 303
    with invariant():
        assert elapsed < 0.5, f"the comment took {elapsed:.2f} s while Twitter took 1 s"


# --8<-- [start:hang]
def test_site_stays_up_while_twitter_hangs(site, twitter, photo):
    twitter.set_mode("hang")
    with ThreadPoolExecutor(site.workers) as pool:
        comments = [
            pool.submit(site.comment, photo, f"while hanging {n}", timeout=60) for n in range(site.workers)
        ]
        try:
            # One comment per web worker: wait until they are answered or all stuck on Twitter.
            wait_until(
                lambda: all(c.done() for c in comments) or twitter.state()["held"] >= site.workers,
                timeout=10,
                what="comments answered or held by Twitter",
            )
            with invariant(requests.Timeout):
                home = site.home(timeout=1.0)  # a page that never touches Twitter
                assert home.status_code == 200
        finally:
            twitter.set_mode("up")
    assert all(c.result().status_code == 303 for c in comments)
# --8<-- [end:hang]


def test_no_tweet_is_lost_during_an_outage(site, twitter, photo, drain_seconds):
    twitter.set_mode("down")
    bodies = [f"during the outage {n}" for n in range(5)]
    for body in bodies:
        assert site.comment(photo, body).status_code == 303  # the comment itself is saved

    twitter.set_mode("up")
    found = twitter.tweets_starting_with(bodies, seconds=drain_seconds, idle=site.idle)

    lost = [body for body, tweets in found.items() if not tweets]
    with invariant():
        assert lost == [], f"{len(lost)} of {len(bodies)} tweets lost"


# --8<-- [start:duplicates]
@pytest.mark.xfail(
    strict=True,
    raises=InvariantBroken,
    reason="select-then-update race: two workers read the same job and both post it - fixed in 03-kestrel",
)
def test_no_tweet_is_posted_twice_with_many_workers(twitter, tmp_path, drain_seconds, paused_worker):
    """The stage's own worker code, four of them, with the race window forced open.

    Each worker reads the oldest job, then waits at a barrier until all four have read it,
    then claims it: what a busy site does by chance, made to happen every time.
    """
    from twitpic.db import Database, init_db
    from twitpic.jobs import enqueue_tweet
    from twitpic.worker import WorkerSettings

    url = f"sqlite:///{tmp_path / 'queue.sqlite3'}"  # the stage's default database, all ours
    init_db(url)
    db = Database(url)
    enqueue_tweet(db, "bob", "busy site https://twitpic.example/photos/1")
    db.close()

    barrier = threading.Barrier(4, timeout=10)  # broken, it fails the test: the race was not run
    # The default claim, `naive`, as Twitpic first wrote it.
    settings = WorkerSettings(database_url=url, twitter_api_url=twitter.api_url)

    def one_worker(_):
        worker = paused_worker(settings, barrier.wait)
        try:
            return worker.run_once()
        finally:
            worker.close()

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(one_worker, range(4))) == [True] * 4  # all four claimed a job

    # The four workers have returned: nothing else is on its way to Twitter.
    found = twitter.tweets_starting_with(["busy site"], seconds=drain_seconds, idle=lambda: True)
    with invariant():
        assert len(found["busy site"]) == 1, f"posted {len(found['busy site'])} times"
# --8<-- [end:duplicates]


def test_no_tweet_is_lost_when_a_worker_is_killed(site, twitter, photo, drain_seconds):
    twitter.set_mode("hang")
    assert site.comment(photo, "the worker dies").status_code == 303
    worker = process_calling(site.background_worker_pids, twitter.port)
    dropped = twitter.stats()["rejected"].get("abandoned", 0)
    psutil.Process(worker).send_signal(signal.SIGKILL)
    # Twitter notices the dropped connection before it recovers.
    wait_until(lambda: twitter.stats()["rejected"].get("abandoned", 0) > dropped,
               timeout=10, what="the call dropped")
    twitter.set_mode("up")

    assert "the worker dies" in site.photo_page(photo).text  # the comment was saved first
    found = twitter.tweets_starting_with(["the worker dies"], seconds=drain_seconds, idle=site.idle)
    with invariant():
        assert found["the worker dies"], "the tweet was lost with the worker"



def test_no_tweet_is_lost_when_the_queue_restarts(site_on_its_own_postgresql, twitter, drain_seconds):
    """Here the queue is the site's own database, and a comment and its tweet's job are saved in
    one transaction. The database server (PostgreSQL) is killed with SIGKILL, then started again,
    while comments keep coming: each comment the site saved reaches Twitter once. The comments
    made while it was down were refused, so they were never the site's to lose."""
    site, server = site_on_its_own_postgresql
    photo = site.new_photo()
    twitter.set_mode("down")  # so that a backlog waits in the table when the server dies
    before = [f"before the restart {n}" for n in range(5)]
    site.comment_each(photo, before)
    server.crash()
    # Up again at once: each failed try counts towards the job's eight, and a slow restart of the
    # server must not spend them.
    twitter.set_mode("up")
    during = [f"while the queue is down {n}" for n in range(3)]
    refused = [site.comment(photo, body).status_code for body in during]
    server.start()  # recovers from its write-ahead log
    after = [f"after the restart {n}" for n in range(3)]
    site.comment_each(photo, after)

    found = twitter.tweets_starting_with(before + during + after, seconds=drain_seconds, idle=site.idle)
    assert refused == [500] * len(during)  # an error page: the comment was not saved
    assert [found[body] for body in during] == [[]] * len(during)
    saved = before + after
    lost = [body for body in saved if not found[body]]
    with invariant():
        assert lost == [], f"{len(lost)} of {len(saved)} tweets lost: {lost}"
        assert {body: len(found[body]) for body in saved} == {body: 1 for body in saved}
