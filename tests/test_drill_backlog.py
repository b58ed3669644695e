"""The drill's count of a stage's backlog (lab/drill/probes.py), against stage 04's real Redis and
RQ job worker: a job that a killed job worker had taken still counts, so the drill waits for it."""

import signal

import redis
from rq import Queue

from lab.drill.probes import backlog_probe
from lab.runtime.process import wait_until
from lab.testing.fixtures import running_twitter, twitter  # noqa: F401
from lab.testing.rq import freeze_while_it_waits_for_a_job
from lab.testing.stages import running_stage


def test_a_job_taken_by_a_killed_job_worker_counts_in_the_backlog(twitter, tmp_path):  # noqa: F811
    with running_stage("04-rq", twitter, tmp_path / "data", job_workers=1, web_workers=1) as stage:
        site, env, processes = stage
        photo = site.new_photo()
        probe = backlog_probe(set(processes), env, twitter)
        connection = redis.Redis.from_url(env["REDIS_URL"])
        wait_until(lambda: probe() == 0, timeout=20, what="an empty backlog")

        job_worker = processes["worker.1"]
        freeze_while_it_waits_for_a_job(job_worker, connection)
        assert site.comment(photo, "taken, never started").status_code == 303
        queue = Queue("tweets", connection=connection)
        wait_until(lambda: queue.count == 0, timeout=10, what="the job taken")
        job_worker.signal(signal.SIGKILL)
        wait_until(lambda: not job_worker.alive, timeout=10, what="the job worker gone")

        assert probe() == 1  # neither queued, nor started: on RQ's intermediate list
        assert twitter.tweets_starting_with(["taken, never started"])["taken, never started"] == []
