"""RQ's default for a job whose work horse is killed: failed, not retried, unless it has a Retry.

This module's site runs at the story's own speed (TIME_SCALE 1): the job's call to a hung Twitter
then lasts its full 10 s, time enough to find its work horse and kill it on a loaded machine. At
the other modules' 0.1 the call gives up after 1 s, and a job that ends by its own timeout would
say nothing about a killed one. The stage's own jobs are enqueued with a Retry for this (queue.py).
"""

import signal

import psutil

from lab.runtime.process import process_calling, wait_until

TIME_SCALE = 1.0  # this module's site (see the `site` fixture)
JOB_WORKERS = 2  # and one job, one horse to kill


def test_without_retry_a_killed_job_is_not_retried(site, twitter, photo):
    """RQ's default: a job whose process dies is failed, not retried, unless the job has a Retry."""
    from twitpic.queue import JOB

    queue = site.queue()
    twitter.set_mode("hang")
    text = "no second chance https://twitpic.example/p"
    job = queue.enqueue(JOB, "comment-no-retry", "bob", text, job_timeout=60)
    wait_until(lambda: twitter.state()["held"] == 1, timeout=10, what="the job calls Twitter")
    horse = process_calling(site.background_worker_pids, twitter.port)
    psutil.Process(horse).send_signal(signal.SIGKILL)
    wait_until(lambda: job.get_status(refresh=True) == "failed", timeout=10, what="the job failed")
    twitter.set_mode("up")
    assert twitter.tweets_starting_with(["no second chance"], idle=site.idle)["no second chance"] == []
