"""The six invariants every stage is held to. Stage 01 breaks four of them, and has no queue for
the sixth to be about.

A strict xfail must fail, and for its stated reason only: if one of these ever passed in this
stage, the run would turn red, and so would a failure anywhere outside the `with invariant():`
block that checks the promise itself (a 500 instead of a 303, no process found).
"""

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from lab.runtime.process import process_calling, wait_until
from lab.testing.invariants import InvariantBroken, does_not_apply, invariant


@pytest.mark.xfail(
    strict=True,
    raises=InvariantBroken,
    reason="the request waits for Twitter, so every comment takes Twitter's 1-2 s - fixed in 02-db-queue",
)
def test_comment_answers_fast_while_twitter_is_slow(site, twitter, photo):
    twitter.control(latency_ms=[1000, 1000])  # a normal day: one second per call

    started = time.monotonic()
    response = site.comment(photo, "first!")
    elapsed = time.monotonic() - started

    assert response.status_code == 303
    with invariant():
        assert elapsed < 0.5, f"the comment took {elapsed:.2f} s while Twitter took 1 s"


# --8<-- [start:hang]
@pytest.mark.xfail(
    strict=True,
    raises=InvariantBroken,
    reason="every web worker blocks on the hung Twitter call, so even the home page stops "
    "answering (the domino effect) - fixed in 02-db-queue",
)
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


@pytest.mark.xfail(
    strict=True,
    raises=InvariantBroken,
    reason="a failed call is not retried, so tweets made while Twitter is down are lost - fixed in 02-db-queue",
)
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


def test_no_tweet_is_posted_twice_with_many_workers(site, twitter, photo, drain_seconds):
    bodies = [f"busy site {n}" for n in range(20)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda body: site.comment(photo, body), bodies))
    assert [r.status_code for r in responses] == [303] * len(bodies)

    found = twitter.tweets_starting_with(bodies, seconds=drain_seconds, idle=site.idle)

    with invariant():
        assert {body: len(tweets) for body, tweets in found.items()} == {body: 1 for body in bodies}
        assert twitter.stats()["duplicates"] == 0


@pytest.mark.xfail(
    strict=True,
    raises=InvariantBroken,
    reason="the tweet is posted inside the request, so a web worker killed mid-call loses it "
    "- fixed in 02-db-queue",
)
def test_no_tweet_is_lost_when_a_worker_is_killed(site, twitter, photo, drain_seconds):
    twitter.set_mode("hang")
    with ThreadPoolExecutor(1) as pool:
        comment = pool.submit(site.comment, photo, "the worker dies", timeout=30)
        worker = process_calling(site.web_worker_pids, twitter.port)
        dropped = twitter.stats()["rejected"].get("abandoned", 0)
        psutil.Process(worker).send_signal(signal.SIGKILL)
        # Twitter notices the dropped connection before it recovers.
        wait_until(lambda: twitter.stats()["rejected"].get("abandoned", 0) > dropped,
                   timeout=10, what="the call dropped")
        twitter.set_mode("up")
        with pytest.raises(requests.ConnectionError):
            comment.result()  # the browser sees the connection drop

    assert "the worker dies" in site.photo_page(photo).text  # the comment was saved first
    found = twitter.tweets_starting_with(["the worker dies"], seconds=drain_seconds, idle=site.idle)
    with invariant():
        assert found["the worker dies"], "the tweet was lost with the worker"



@does_not_apply("there is no queue to restart: the request posts the tweet itself, and a request that "
                "fails loses it (the invariants above)")
def test_no_tweet_is_lost_when_the_queue_restarts():
    """Stage 01 has no queue server: the tweet never waits anywhere between the comment and Twitter."""
