"""Stage 04's test bench: a real fake Twitter, and the stage's real Redis, RQ worker processes
and gunicorn, all started from its Procfile on free ports.
"""

import os
from pathlib import Path

import psutil
import pytest
import redis
import requests

from lab.runtime.process import ManagedProcess, free_port, wait_until
from lab.runtime.stages import Stage
from lab.runtime.up import stage_environment, start_stage
from lab.testing.fixtures import running_twitter, twitter  # noqa: F401  (the fake Twitter, fresh for each test)
from lab.testing.site_client import SiteClient

STAGE = Stage(Path(__file__).resolve().parents[1])
WEB_WORKERS = 2  # small on purpose: two stuck requests are enough to take the site down
WORKERS = 4  # background worker processes
TIME_SCALE = 0.1  # job timeouts, retry intervals and the breaker, 10 times faster
DRAIN_SECONDS = 10.0  # how long a test waits for tweets to appear after Twitter recovers
# The tests start a private Redis. To run them on a Redis of your own, name it here; its
# database is emptied first, which is why a REDIS_URL set for everyday use is not enough.
OWN_REDIS_VARIABLE = "TWITPIC_TEST_REDIS_URL"


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
        return int(self.env["WORKER_COUNT"])  # the RQ workers; `workers` counts the web workers

    def queue_status(self) -> dict:
        return requests.get(self.url("/status.json"), timeout=10).json()

    def idle(self) -> bool:
        """No job is queued, taken, running or waiting to retry, and no worker is busy with one."""
        status = self.queue_status()
        waiting = status["queued"] + status["taken"] + status["started"] + status["scheduled"]
        return waiting + status["busy_workers"] == 0

    def comment_each(self, photo: int, bodies: list[str]) -> None:
        """One comment per body, each saved (303), one after another."""
        for body in bodies:
            assert self.comment(photo, body).status_code == 303, body

    def wait_for_the_breaker(self, timeout: float) -> None:
        wait_until(lambda: self.queue_status()["breaker_open"], timeout=timeout, what="the breaker opened")

    def reset_breaker(self) -> None:
        """The shared breaker closed, with no failure counted."""
        from twitpic.tasks import breaker_for

        with redis.Redis.from_url(self.redis_url) as connection:
            breaker = breaker_for(connection, {"TIME_SCALE": float(self.env["WORKBOOK_TIME_SCALE"])})
            connection.delete(breaker.failures_key, breaker.open_key, breaker.tripped_key, breaker.trial_key)

    def background_worker_pids(self) -> list[int]:
        """Every process under the supervisor: the RQ workers and their work horses."""
        return [child.pid for child in psutil.Process(self.processes["worker"].pid).children(recursive=True)]


@pytest.fixture(scope="module")
def site(running_twitter, tmp_path_factory, request):
    data_dir = tmp_path_factory.mktemp("data")
    time_scale = getattr(request.module, "TIME_SCALE", TIME_SCALE)  # a module may run its story faster
    env = stage_environment(
        data_dir=data_dir,
        workers=WEB_WORKERS,
        web_port=free_port(),
        twitter_port=running_twitter.port,
        twitter_control_port=running_twitter.control_port,
    )
    env.update(WORKER_COUNT=str(WORKERS), WORKBOOK_TIME_SCALE=str(time_scale), REDIS_PORT=str(free_port()))
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
        for name in ("web", "worker", "redis"):
            if name in site.processes:
                site.processes[name].stop()
                site.processes[name].remove_log()


@pytest.fixture(autouse=True)
def settled_queue(request):
    """Tests that use the site start with no jobs waiting: nothing left over from the test before."""
    if "site" in request.fixturenames:
        site = request.getfixturevalue("site")
        twitter = request.getfixturevalue("twitter")  # `up`, so that leftovers can drain
        wait_until(
            lambda: (lambda s: s["queued"] + s["started"] + s["scheduled"] == 0)(site.queue_status()),
            timeout=DRAIN_SECONDS,
            what="the queue drained",
        )
        twitter.reset()  # what drained belongs to the test before
        site.reset_breaker()  # and so do the failures it counted


@pytest.fixture
def drain_seconds() -> float:
    return DRAIN_SECONDS


@pytest.fixture
def photo(site, twitter) -> int:
    """A fresh photo to comment on (uploaded without a tweet)."""
    return site.new_photo()
