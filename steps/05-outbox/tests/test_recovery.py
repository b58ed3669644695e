"""Job workers killed: RQ's own recovery puts the job back, runs it once, and never twice at the
same time. Watched from outside, as `ps` and `lsof` would: which processes hold a call at Twitter.
"""

import signal
import time

import psutil
import pytest

from lab.runtime.process import connects_to, process_calling, wait_until
from lab.testing.rq import freeze_while_it_waits_for_a_job

JOB_WORKERS = 2  # this module's site (see the `site` fixture): one to kill, one to take the job over
SCHEDULER_INTERVAL = 1  # seconds: RQ's scheduler looks for due jobs once a second
RQ_INTERMEDIATE_WAIT = 60  # seconds RQ leaves a job on its intermediate list before it acts (IntermediateQueue)


# --8<-- [start:horse_test]
def test_a_killed_workers_horse_is_gone_before_its_job_runs_again(site, twitter, photo):
    """SIGKILL an RQ job worker, not its work horse: the horse has a process group of its own and
    lives on, until its call gives up. Only then may the job run again, in another horse."""
    failed = site.queue_status()["failed"]
    twitter.set_mode("hang")
    assert site.comment(photo, "one job, one horse").status_code == 303
    horse = psutil.Process(process_calling(site.background_worker_pids, twitter.port))
    horse.parent().send_signal(signal.SIGKILL)

    # Until the tweet is on Twitter: whenever another process calls Twitter, the job is running
    # again, and the first horse must be gone by then.
    overlaps = []
    deadline = time.monotonic() + site.recovery_seconds()
    while not twitter.tweets_starting_with(["one job, one horse"])["one job, one horse"]:
        assert time.monotonic() < deadline, "the job did not run again in time"
        callers = [pid for pid in {horse.pid, *site.background_worker_pids()} if connects_to(pid, twitter.port)]
        if set(callers) - {horse.pid} and running(horse):
            overlaps.append(callers)
        if callers and horse.pid not in callers:
            twitter.set_mode("up")  # the job runs again: let it through
        time.sleep(0.02)
    assert overlaps == [], "the dead job worker's horse still ran while its job ran again"

    found = twitter.tweets_starting_with(["one job, one horse"], seconds=site.recovery_seconds(), idle=site.idle)
    assert len(found["one job, one horse"]) == 1
    assert site.queue_status()["failed"] == failed
# --8<-- [end:horse_test]


def test_a_job_worker_killed_while_it_waits_for_a_job_takes_none_with_it(site, twitter, photo, drain_seconds):
    """Every job worker killed while waiting for a job, and a new one started: the next tweet
    reaches Twitter at once. Under `rq worker --with-scheduler`, the scheduler forked from one of
    them would keep that job worker's wait open in Redis, and the tweet would go to a reader that
    is gone, for a minute or more (twitpic/scheduler.py)."""
    for process in site.job_worker_processes():
        process.signal(signal.SIGKILL)
        wait_until(lambda process=process: not process.alive, timeout=10, what="the job worker gone")
    site.start_job_worker()

    assert site.comment(photo, "after the massacre").status_code == 303
    found = twitter.tweets_starting_with(["after the massacre"], seconds=drain_seconds, idle=site.idle)
    assert len(found["after the massacre"]) == 1


@pytest.mark.long  # RQ looks at such a job again a minute later: `make test-long`
def test_a_job_worker_killed_after_taking_a_job_and_before_starting_it_loses_nothing(site, twitter, photo):
    """Every job worker frozen while it waits for a job, a comment, then every job worker killed: the
    job was taken (onto RQ's intermediate list) but never started. A maintenance pass of the new
    job worker notes it; one a minute later hands it to the crash retry, and the tweet is posted."""
    connection = site.connection()
    job_workers = site.job_worker_processes()
    for process in job_workers:
        freeze_while_it_waits_for_a_job(process, connection)
    assert site.comment(photo, "taken, then orphaned").status_code == 303
    wait_until(lambda: site.queue().count == 0, timeout=10, what="the job taken")
    for process in job_workers:
        process.signal(signal.SIGKILL)
        wait_until(lambda process=process: not process.alive, timeout=10, what="the job worker gone")
    site.start_job_worker()

    environment, settings = site.settings_environment(), site.settings()
    maintenance = int(environment["RQ_MAINTENANCE_INTERVAL"])
    retry = 1.5 * settings["RETRY_FIRST"] + SCHEDULER_INTERVAL
    bound = RQ_INTERMEDIATE_WAIT + 2 * maintenance + retry + 10  # 10 s for a loaded machine
    found = twitter.tweets_starting_with(["taken, then orphaned"], seconds=bound, idle=site.idle)
    assert len(found["taken, then orphaned"]) == 1


def running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE  # a zombie has ended; only its exit code is left
    except psutil.NoSuchProcess:
        return False
