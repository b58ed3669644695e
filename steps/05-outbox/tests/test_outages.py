"""Twitter failing for a while: the shared circuit breaker, a rate limit, and jobs that wait them
out without spending the retries they keep for crashes, against the stage's real processes."""

import time
from datetime import datetime, timedelta, timezone

from rq.exceptions import NoSuchJobError

from lab.runtime.process import wait_until

JOB_WORKERS = 2  # this module's site (see the `site` fixture): enough for calls under way when the breaker opens
HELD_OPEN = 60  # seconds the breaker test holds the breaker open while it looks


def jobs_due_after(registry, seconds: float) -> int:
    """How many jobs in RQ's scheduled `registry` are due more than `seconds` from now."""
    later = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    count = 0
    for job_id in registry.get_job_ids():
        try:
            if registry.get_scheduled_time(job_id) > later:
                count += 1
        except NoSuchJobError:  # RQ's scheduler queued it between the two reads: it was due
            pass
    return count


def test_the_breaker_stops_calls_while_twitter_is_down_and_closes_after(site, twitter, photo):
    failed = site.queue_status()["failed"]
    twitter.set_mode("down")
    bodies = [f"while down {n}" for n in range(8)]
    site.comment_each(photo, bodies)
    site.wait_for_the_breaker(timeout=10)
    breaker = site.breaker()
    breaker.redis.pexpire(breaker.open_key, HELD_OPEN * 1000)  # hold it open while we look
    # Once no job is running, no work horse is left that could be calling Twitter.
    wait_until(lambda: site.queue_status()["started"] == 0, timeout=10, what="no job running")
    calls = twitter.stats()["received"]
    # The calls that opened it, and those that were already under way: no more.
    assert calls <= breaker.threshold + site.job_workers - 1

    # Open: nobody calls Twitter; new tweets wait to be tried again once it has cooled down.
    waiting = [f"while open {n}" for n in range(3)]
    site.comment_each(photo, waiting)
    bodies += waiting
    # Every job has met the breaker held open, and waits for its cool-down: none is due before it
    # ends, so none is running, and none is moved while we look. (A job that met the breaker
    # before it was held waits a short while, comes back, and meets it again.)
    scheduled = site.queue().scheduled_job_registry
    wait_until(lambda: jobs_due_after(scheduled, HELD_OPEN / 2) == len(bodies), timeout=10,
               what="every tweet waiting for the cool-down")
    assert site.queue_status()["breaker_open"]
    assert twitter.stats()["received"] == calls

    # Twitter is back. Let the breaker cool down now, as if the minute had passed: it closes, and
    # the waiting jobs are due.
    twitter.set_mode("up")
    breaker.redis.pexpire(breaker.open_key, 1)
    for job_id in scheduled.get_job_ids():
        scheduled.requeue(job_id)
    found = twitter.tweets_starting_with(bodies, seconds=site.recovery_seconds(), idle=site.idle)
    assert {body: len(tweets) for body, tweets in found.items()} == {body: 1 for body in bodies}
    assert not site.queue_status()["breaker_open"]
    assert site.queue_status()["failed"] == failed  # the outage cost no job its retries


def test_a_rate_limit_is_waited_out_by_every_job_worker_and_opens_no_breaker(site, twitter, photo):
    """A 429 belongs to the user's credentials, not to Twitter being down: the user's jobs wait
    for its Retry-After, all of them, and the breaker stays closed."""
    failed = site.queue_status()["failed"]
    twitter.control(mode="limited", retry_after=2)  # 429 with Retry-After: 2
    bodies = [f"too many {n}" for n in range(6)]
    site.comment_each(photo, bodies)
    wait_until(lambda: site.queue_status()["scheduled"] == len(bodies), timeout=10,
               what="every tweet waiting out the rate limit")
    limited = twitter.stats()["rejected"]["limited"]
    assert limited <= site.job_workers  # the calls under way when the first 429 came back, no more
    time.sleep(1)  # within the 2 s Twitter asked for: nobody calls
    assert twitter.stats()["received"] == limited
    assert not site.queue_status()["breaker_open"]

    twitter.set_mode("up")
    found = twitter.tweets_starting_with(bodies, seconds=site.recovery_seconds(), idle=site.idle)
    assert {body: len(tweets) for body, tweets in found.items()} == {body: 1 for body in bodies}
    assert site.queue_status()["failed"] == failed


def test_a_job_that_meets_the_open_breaker_keeps_its_retries(site, monkeypatch):
    """However long an outage lasts, waiting for the breaker spends none of the retries a job
    keeps for crashes: the job returns RQ's `Retry`, counted apart, due when the cool-down ends."""
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    from twitpic.queue import CRASH_RETRIES, enqueue_tweet, job_id_for

    for name, value in site.settings_environment().items():
        monkeypatch.setenv(name, value)
    queue = site.queue("tweets-to-one-side")  # a queue the stage's job workers do not read
    breaker = site.breaker()
    try:
        for _ in range(breaker.threshold):
            breaker.record_failure(trial=False)
        enqueue_tweet(queue, site.settings(), "comment-patient", "bob", "patient tweet https://twitpic.example/p")
        # A job worker of RQ's own, in this process: it runs the job, which meets the open breaker.
        SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer).work(burst=True)
        job = queue.fetch_job(job_id_for("comment-patient"))
        assert job.get_status() == "scheduled"  # to be tried again...
        due = queue.scheduled_job_registry.get_scheduled_time(job.id)
        wait = (due - datetime.now(timezone.utc)).total_seconds()
        assert breaker.seconds_left() - 1 <= wait <= 1.2 * breaker.seconds_left() + 0.5
        assert job.retries_left == CRASH_RETRIES  # ...once cooled down, with none of its crash retries spent
        assert job.number_of_retries == 1  # the wait, counted apart
    finally:
        site.reset_breaker()  # opened here on purpose: closed again for the tests after
