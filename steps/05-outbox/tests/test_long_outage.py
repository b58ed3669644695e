"""The case study's outage: Twitter hangs for ten minutes while people keep commenting.

Here the story runs 50 times faster than life (ten story-minutes take 12 s): a call gives up
after 10 story-seconds, the breaker cools down for 20. It is a long check, left out of a plain
`pytest steps/04-rq`: run it with `pytest steps/04-rq -m long` (CI does).
"""

import time

import pytest

pytestmark = pytest.mark.long

TIME_SCALE = 0.02  # this module's site (see the `site` fixture)
HANG_STORY_SECONDS = 600


def test_a_long_hang_opens_the_breaker_and_every_tweet_is_posted_once_after(site, twitter, photo):
    from twitpic.queue import CRASH_RETRIES, tweets_queue

    settings = site.settings()
    breaker = site.breaker()
    failed = site.queue_status()["failed"]
    twitter.set_mode("hang")
    bodies = [f"in the long hang {n}" for n in range(8)]
    site.comment_each(photo, bodies)

    # A handful of calls, each given up after its timeout, open the breaker: those that counted
    # towards it, and those of the other workers already under way.
    site.wait_for_the_breaker(timeout=5)
    assert twitter.stats()["received"] <= breaker.threshold + site.job_workers - 1

    # People keep commenting through the hang; the calls Twitter sees are the trial calls, one
    # after each cool-down, where a breaker-less site would call it four at a time without pause.
    started = time.monotonic()
    while time.monotonic() - started < HANG_STORY_SECONDS * TIME_SCALE:
        body = f"in the long hang {len(bodies)}"
        assert site.comment(photo, body).status_code == 303
        bodies.append(body)
        time.sleep(15 * TIME_SCALE)  # a comment every 15 story-seconds
    calls = twitter.stats()["received"]
    hung = time.monotonic() - started
    trials = hung / (breaker.cooldown + settings["TWITTER_READ_TIMEOUT"]) + 1
    assert calls <= breaker.threshold + site.job_workers - 1 + trials, f"{calls} calls in {hung:.1f} s"
    assert twitter.ledger() == []

    twitter.set_mode("up")
    found = twitter.tweets_starting_with(bodies, seconds=10, idle=site.idle)

    assert {body: len(tweets) for body, tweets in found.items()} == {body: 1 for body in bodies}
    assert site.queue_status()["failed"] == failed  # ten minutes of hang sent no job to the failed registry
    queue = tweets_queue(site.connection())
    kept = [queue.fetch_job(job_id).retries_left for job_id in queue.finished_job_registry.get_job_ids()]
    assert len(kept) == len(bodies) and set(kept) == {CRASH_RETRIES}  # nor cost any job a crash retry
