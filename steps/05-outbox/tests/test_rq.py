"""What RQ gives (retries, timeouts, unique jobs, a failed-job registry, monitoring), and what the
stage adds to it (a reservation per tweet, a durable Redis), against the stage's real processes
and a real Redis. Outages, the breaker and rate limits are in test_outages.py.
"""

import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from rq.registry import FailedJobRegistry

from lab.runtime.process import wait_until

JOB_WORKERS = 2  # this module's site (see the `site` fixture): enough to run jobs side by side

RQ = str(Path(sys.executable).with_name("rq"))  # RQ's own command, from this environment


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
    # The call's read timeout (1 s here, well inside the job's timeout) gives up; Twitter sees
    # the call dropped, and the job waits to be tried again.
    wait_until(lambda: twitter.stats()["rejected"].get("abandoned", 0) >= 1, timeout=10, what="a call cut off")
    wait_until(lambda: site.queue_status()["scheduled"] + site.queue_status()["queued"] >= 1, timeout=10,
               what="the job waiting to be tried again")

    twitter.set_mode("up")
    found = twitter.tweets_starting_with(["hung call"], seconds=drain_seconds, idle=site.idle)
    assert len(found["hung call"]) == 1
    assert site.queue_status()["failed"] == failed


def test_a_poison_job_goes_to_the_failed_registry_and_the_rest_keep_flowing(site, twitter, photo, drain_seconds):
    from twitpic.queue import enqueue_tweet, job_id_for

    queue = site.queue()
    enqueue_tweet(queue, site.settings(), "comment-poison", "mallory", "from nobody https://twitpic.example/p")
    assert site.comment(photo, "after the poison").status_code == 303

    found = twitter.tweets_starting_with(["after the poison"], seconds=drain_seconds, idle=site.idle)

    assert len(found["after the poison"]) == 1
    failed = FailedJobRegistry(queue=queue)
    wait_until(lambda: job_id_for("comment-poison") in failed.get_job_ids(), timeout=10, what="the poison failed")
    job = queue.fetch_job(job_id_for("comment-poison"))
    assert "PoisonJob: no Twitter token for 'mallory'" in job.latest_result().exc_string
    assert job.retries_left == 0  # it raised each time: its crash retries are spent, and no more
    assert [tweet for tweet in twitter.ledger() if tweet["text"].startswith("from nobody")] == []


def test_the_same_tweet_cannot_be_queued_twice(site):
    from rq.exceptions import DuplicateJobError

    from twitpic.queue import enqueue_tweet

    queue = site.queue("tweets-to-one-side")  # no job worker reads it: the first job stays queued
    enqueue_tweet(queue, site.settings(), "comment-once", "bob", "only once https://twitpic.example/p")
    with pytest.raises(DuplicateJobError):
        enqueue_tweet(queue, site.settings(), "comment-once", "bob", "only once https://twitpic.example/p")
    assert queue.count == 1


def test_a_comments_job_is_named_after_the_comment(site, twitter, photo, drain_seconds):
    """The job's id comes from the comment, so whatever queues the comment's tweet a second time
    (a request sent again, a relay that sends twice) is refused by `unique=True`."""
    from rq.exceptions import DuplicateJobError

    from twitpic.queue import enqueue_tweet, job_id_for

    response = site.comment(photo, "named after me")
    assert response.status_code == 303, f"the comment answered {response.status_code}"
    tweet_id = "comment-" + response.headers["Location"].rsplit("#comment-", 1)[1]
    queue = site.queue()
    wait_until(lambda: queue.fetch_job(job_id_for(tweet_id)) is not None, timeout=10, what="the relay queued it")
    assert queue.fetch_job(job_id_for(tweet_id)).args[0] == tweet_id
    found = twitter.tweets_starting_with(["named after me"], seconds=drain_seconds, idle=site.idle)
    text = found["named after me"][0]["text"]
    with pytest.raises(DuplicateJobError):  # its finished job is kept a while: a second one is refused
        enqueue_tweet(site.queue(), site.settings(), tweet_id, "bob", text)
    assert len(twitter.tweets_starting_with(["named after me"], idle=site.idle)["named after me"]) == 1


def test_two_runs_of_one_tweet_at_the_same_moment_post_it_once(site, twitter, monkeypatch):
    """The same tweet's job run twice at once (two jobs of it, or a job and its retry): the
    posted-tweets record lets one run reserve the tweet, the other is tried again later; Twitter
    gets it once, even a Twitter that takes repeats."""
    from rq import Retry

    from twitpic.tasks import post_tweet_job

    for name, value in site.settings_environment().items():
        monkeypatch.setenv(name, value)
    twitter.control(latency_ms=[500, 500], reject_duplicates=False)  # slow, inside the 1 s read timeout
    text = "twice at once https://twitpic.example/p"
    try:
        with ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(lambda _: post_tweet_job("comment-twice", "bob", text), range(2)))
    finally:
        twitter.control(reject_duplicates=True)

    assert len([tweet for tweet in twitter.ledger() if tweet["text"] == text]) == 1
    posted, waiting = sorted(runs, key=lambda run: isinstance(run, Retry))
    assert isinstance(posted, str) and isinstance(waiting, Retry)  # the other is tried again later
    assert post_tweet_job("comment-twice", "bob", text) is None  # and then finds it posted


def test_rq_info_reads_the_stages_redis(site):
    result = subprocess.run([RQ, "info", "--url", site.redis_url], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "tweets" in result.stdout
    assert f"{site.job_workers} workers" in result.stdout, result.stdout


def test_the_stages_redis_keeps_the_queue_and_says_so(site):
    """Stage 04's Redis keeps an append-only file, synced every second, and never evicts a job;
    the status page says the queue survives a restart."""
    with site.connection() as connection:
        config = connection.config_get("appendonly", "appendfsync", "maxmemory-policy")
    assert config == {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"}
    assert site.queue_status()["could_lose_jobs"] == []
    page = requests.get(site.url("/status"), timeout=10).text
    assert "survives a Redis restart</th>\n      <td>yes</td>" in page


# -- what RQ does not do by default -----------------------------------------------------------


def test_a_failed_job_can_be_requeued_from_the_failed_registry(site, twitter):
    """A job that failed for good waits in the failed registry; once a person has fixed what made
    it fail, `rq requeue` sends it back, and it runs."""
    from twitpic.queue import JOB

    queue = site.queue()
    # Enqueued by hand, with no Retry: a user the site does not know yet makes it fail at once.
    job = queue.enqueue(JOB, "comment-requeue", "erin", "second chance https://twitpic.example/p")
    wait_until(lambda: job.get_status(refresh=True) == "failed", timeout=10, what="the job failed")
    with sqlite3.connect(site.data_dir / "twitpic.sqlite3") as db:  # the fix: erin gets an account
        db.execute("INSERT INTO users (username, twitter_token) VALUES ('erin', 'demo-token-alice')")

    result = subprocess.run(
        [RQ, "requeue", "--all", "--queue", "tweets", "--serializer", "json", "--url", site.redis_url],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    found = twitter.tweets_starting_with(["second chance"], seconds=10, idle=site.idle)
    assert len(found["second chance"]) == 1
