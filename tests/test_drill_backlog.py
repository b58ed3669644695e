"""The drill's count of a stage's backlog (lab/drill/probes.py), against stage 04's real Redis and
RQ job worker: a job that a killed job worker had taken still counts, so the drill waits for it."""

import signal

import redis
from rq import Queue

from lab.drill.probes import backlog_probe
from lab.runtime.process import free_port, wait_until
from lab.runtime.stages import Stage
from lab.runtime.up import stage_environment, start_stage, stop_all
from lab.testing.fixtures import running_twitter, twitter  # noqa: F401
from lab.testing.rq import freeze_while_it_waits_for_a_job
from lab.testing.site_client import SiteClient


def test_a_job_taken_by_a_killed_job_worker_counts_in_the_backlog(twitter, tmp_path):  # noqa: F811
    env = stage_environment(
        data_dir=tmp_path / "data", workers=1, web_port=free_port(), twitter_port=twitter.port,
        twitter_control_port=twitter.control_port, kestrel_port=free_port(), redis_port=free_port(),
    )
    env["WORKER_COUNT"] = "1"
    started = start_stage(Stage.find("04-rq"), env, skip=frozenset({"twitter"}))
    processes = {process.name.split(":")[1]: process for process in started}
    try:
        site = SiteClient(f"http://127.0.0.1:{env['WEB_PORT']}")
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
    finally:
        stop_all(list(processes.values()))
