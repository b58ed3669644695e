"""A job worker killed mid-job, or between taking a job and starting it: the supervisor's
recovery (twitpic/worker.py) puts the job back, and it runs once, never twice at the same time.
"""

import contextlib
import signal

import psutil

from lab.runtime.process import process_calling, wait_until


# --8<-- [start:horse_test]
def test_a_killed_workers_horse_is_gone_before_its_job_runs_again(site, twitter, photo, drain_seconds):
    """SIGKILL an RQ worker, not its work horse: the horse has a process group of its own and lives on."""
    failed = site.queue_status()["failed"]
    twitter.set_mode("hang")
    assert site.comment(photo, "one job, one horse").status_code == 303
    horse = psutil.Process(process_calling(site.background_worker_pids, twitter.port))
    worker = horse.parent()
    worker.send_signal(signal.SIGKILL)
    wait_until(lambda: not running(worker), timeout=10, what="the worker dead")
    # Freeze the horse in its call, so that it outlives its worker for as long as we look (a real
    # one lives until its call returns). Stopped only now: a process group left without its
    # parent while one of its members is stopped is sent SIGHUP. SIGKILL still ends a frozen process.
    with contextlib.suppress(psutil.NoSuchProcess):
        horse.send_signal(signal.SIGSTOP)

    # The job runs again: a new work horse of another worker holds a call at Twitter...
    again = process_calling(site.background_worker_pids, twitter.port)
    # ...and by then the first horse must be gone, or the job would run twice at the same time.
    assert again != horse.pid
    assert not running(horse), "the dead worker's work horse still runs while its job runs again"

    twitter.set_mode("up")
    found = twitter.tweets_starting_with(["one job, one horse"], seconds=drain_seconds, idle=site.idle)
    assert len(found["one job, one horse"]) == 1
    assert site.queue_status()["failed"] == failed
# --8<-- [end:horse_test]


def test_a_job_taken_by_a_worker_killed_before_it_started_is_put_back(site, twitter, photo, drain_seconds):
    """RQ moves a job to an intermediate list as a worker takes it, and into the started registry
    only when the worker starts it; a worker killed in between leaves it there for minutes."""
    failed = site.queue_status()["failed"]
    workers = [psutil.Process(int(name.rsplit("-", 1)[1])) for name in site.queue_status()["workers"]]
    assert len(workers) == site.job_workers
    for worker in workers:  # every worker idle, blocked waiting for a job: freeze them all there
        worker.send_signal(signal.SIGSTOP)
    assert site.comment(photo, "taken, never started").status_code == 303
    # Redis hands the job to one of the frozen workers at once: it is taken, and nobody runs it.
    wait_until(lambda: site.queue_status()["taken"] == 1, timeout=5, what="the job taken")
    for worker in workers:
        worker.send_signal(signal.SIGKILL)

    found = twitter.tweets_starting_with(["taken, never started"], seconds=drain_seconds, idle=site.idle)
    assert len(found["taken, never started"]) == 1
    assert site.queue_status()["taken"] == 0
    assert site.queue_status()["failed"] == failed


def running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE  # a zombie has ended; only its exit code is left
    except psutil.NoSuchProcess:
        return False
