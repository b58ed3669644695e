"""Stage 04's test bench: a real fake Twitter, and the stage's real Redis, RQ job workers, RQ's
scheduler and gunicorn, all started from its Procfile on free ports.
"""

import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import psutil
import pytest
import redis
import requests

from lab.runtime.process import ManagedProcess, free_port, wait_until
from lab.runtime.stages import Stage
from lab.runtime.up import restart_exited, stage_environment, start_one, start_stage, stop_all
from lab.testing.fixtures import running_twitter, twitter  # noqa: F401  (the fake Twitter, fresh for each test)
from lab.testing.rq import jobs_in_flight
from lab.testing.site_client import SiteClient

STAGE = Stage(Path(__file__).resolve().parents[1])
WEB_WORKERS = 2  # small on purpose: two stuck requests are enough to take the site down
WORKERS = 4  # RQ job workers; a module that needs fewer says so (JOB_WORKERS), to spare the machine
TIME_SCALE = 0.1  # Twitter's timeouts, retry intervals and the breaker, 10 times faster
DRAIN_SECONDS = 10.0  # how long a test waits for tweets to appear after Twitter recovers
# The tests start a private Redis. To run them on a Redis of your own, name it here; its
# database is emptied first, which is why a REDIS_URL set for everyday use is not enough.
OWN_REDIS_VARIABLE = "TWITPIC_TEST_REDIS_URL"
RQ = str(Path(sys.executable).with_name("rq"))  # RQ's own command, from this environment
SCHEDULER_INTERVAL = 1.0  # seconds: RQ's scheduler looks for due jobs once a second


class Site(SiteClient):
    """The running site: a client for its pages, plus its processes and its data folder."""

    def __init__(
        self, base_url: str, processes: dict[str, ManagedProcess], env: dict, data_dir: Path, workers: int,
    ):
        super().__init__(base_url)
        self.processes = processes
        self.env = env
        self.data_dir = data_dir
        self.workers = workers

    @property
    def redis_url(self) -> str:
        return self.env["REDIS_URL"]

    @property
    def job_workers(self) -> int:
        return int(self.env["WORKER_COUNT"])  # the RQ job workers; `workers` counts the web workers

    def settings_environment(self) -> dict[str, str]:
        """The environment the stage's processes run with."""
        return STAGE.environment(self.env)

    def settings(self) -> dict:
        """The stage's settings, as its processes read them from their environment."""
        from twitpic.settings import settings_from_environment

        with mock.patch.dict(os.environ, self.settings_environment()):
            return settings_from_environment()

    def connection(self) -> redis.Redis:
        from twitpic.queue import connect

        return connect(self.settings())

    def queue(self, name: str | None = None):
        """The stage's `tweets` queue, or a queue of another name that no job worker reads."""
        from rq import Queue
        from rq.serializers import JSONSerializer

        from twitpic.queue import tweets_queue

        if name is None:
            return tweets_queue(self.connection())
        return Queue(name, connection=self.connection(), serializer=JSONSerializer)

    def queue_status(self) -> dict:
        return requests.get(self.url("/status.json"), timeout=10).json()

    def idle(self) -> bool:
        """No job is queued, taken by a job worker, running, or waiting to be tried again. (Not
        "no job worker busy": a job worker killed while busy stays listed as busy until its
        record expires.)"""
        from twitpic.queue import tweets_queue

        with self.connection() as connection:
            return jobs_in_flight(tweets_queue(connection)) == 0

    def wait_for_the_breaker(self, timeout: float) -> None:
        wait_until(lambda: self.queue_status()["breaker_open"], timeout=timeout, what="the breaker opened")

    def breaker(self):
        from twitpic.tasks import breaker_for

        return breaker_for(self.connection(), self.settings())

    def reset_breaker(self) -> None:
        """The shared breaker closed, with no failure counted."""
        breaker = self.breaker()
        breaker.redis.delete(breaker.failures_key, breaker.open_key, breaker.tripped_key, breaker.trial_key)

    def job_worker_processes(self) -> list[ManagedProcess]:
        return [process for name, process in self.processes.items() if name.startswith("worker.")]

    def background_worker_pids(self) -> list[int]:
        """Every RQ job worker and its work horse."""
        pids = []
        for process in self.job_worker_processes():
            try:
                pids += [process.pid, *(child.pid for child in psutil.Process(process.pid).children())]
            except psutil.NoSuchProcess:
                continue
        return pids

    def start_job_worker(self) -> ManagedProcess:
        """One more RQ job worker, from the Procfile's line, as a process manager starts one."""
        name = f"worker.{len(self.job_worker_processes()) + 1}"
        while name in self.processes:
            name += "+"
        self.processes[name] = start_one(STAGE, self.env, "worker", name, None)
        return self.processes[name]

    def kill_the_queue_server(self) -> None:
        """SIGKILL the stage's Redis: a crash, as the out-of-memory killer would do it."""
        if "redis" not in self.processes:
            pytest.skip(f"the Redis named in {OWN_REDIS_VARIABLE} is yours: the tests kill only their own")
        self.processes["redis"].kill()

    def start_the_queue_server(self) -> None:
        """Start the stage's Redis again, from its append-only file, as a process manager would."""
        self.processes["redis"].remove_log()
        self.processes["redis"] = start_one(STAGE, self.env, "redis", "redis", None)

    def suspend_job_workers(self) -> None:
        """`rq suspend`: each job worker finishes the job in hand, then takes no other."""
        subprocess.run([RQ, "suspend", "--url", self.redis_url], check=True, capture_output=True, timeout=30)

    def resume_job_workers(self) -> None:
        subprocess.run([RQ, "resume", "--url", self.redis_url], check=True, capture_output=True, timeout=30)

    def restart_what_quit(self) -> None:
        """Start again the processes that quit, as a process manager would (RQ's job workers quit
        when Redis goes away while they are busy)."""
        restart_exited(STAGE, self.env, self.processes)

    def recovery_seconds(self) -> float:
        """How long a tweet whose job worker was killed mid-call may take to reach Twitter, by the
        stage's settings: the work horse lives on and gives the call up at its read timeout; its
        retry comes at most 1.5 first intervals later, RQ's scheduler puts it back on the queue
        within a second, and a job worker runs it (another hung call, cut off again, at worst)."""
        settings = self.settings()
        call = settings["TWITTER_CONNECT_TIMEOUT"] + settings["TWITTER_READ_TIMEOUT"]
        return 2 * (call + 1.5 * settings["RETRY_FIRST"] + SCHEDULER_INTERVAL) + 5  # 5 s for a loaded machine


@pytest.fixture(scope="module")
def site(running_twitter, tmp_path_factory, request):
    data_dir = tmp_path_factory.mktemp("data")
    time_scale = getattr(request.module, "TIME_SCALE", TIME_SCALE)  # a module may run its story faster
    job_workers = getattr(request.module, "JOB_WORKERS", WORKERS)
    env = stage_environment(
        data_dir=data_dir,
        workers=WEB_WORKERS,
        web_port=free_port(),
        twitter_port=running_twitter.port,
        twitter_control_port=running_twitter.control_port,
    )
    env.update(WORKER_COUNT=str(job_workers), WORKBOOK_TIME_SCALE=str(time_scale), REDIS_PORT=str(free_port()))
    env["REDIS_URL"] = f"redis://127.0.0.1:{env['REDIS_PORT']}/0"
    skip = {"twitter"}
    if os.environ.get(OWN_REDIS_VARIABLE):  # asked for by name: REDIS_URL alone is never wiped
        env["REDIS_URL"] = os.environ[OWN_REDIS_VARIABLE]
        skip.add("redis")
        redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    started = start_stage(STAGE, env, skip=frozenset(skip))
    processes = {process.name.split(":")[1]: process for process in started}
    site = Site(f"http://127.0.0.1:{env['WEB_PORT']}", processes, env, data_dir, WEB_WORKERS)
    try:
        yield site
    finally:
        stop_all(list(site.processes.values()))
        for process in site.processes.values():
            process.remove_log()


@pytest.fixture(autouse=True)
def settled_queue(request):
    """Tests that use the site start with no jobs waiting: nothing left over from the test before."""
    if "site" in request.fixturenames:
        site = request.getfixturevalue("site")
        twitter = request.getfixturevalue("twitter")  # `up`, so that leftovers can drain
        wait_until(site.idle, timeout=DRAIN_SECONDS, what="the queue drained")
        twitter.reset()  # what drained belongs to the test before
        site.reset_breaker()  # and so do the failures it counted


@pytest.fixture
def drain_seconds() -> float:
    return DRAIN_SECONDS


@pytest.fixture
def photo(site, twitter) -> int:
    """A fresh photo to comment on (uploaded without a tweet)."""
    return site.new_photo()
