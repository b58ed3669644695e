"""Stage 05's test bench: a real fake Twitter, and the stage's real Redis, RQ job workers, RQ's
scheduler, relay and gunicorn, all started from its Procfile on free ports. For the relay on its
own: real databases (SQLite, the embedded PostgreSQL, MariaDB when its server answers) and a
private Redis.
"""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from unittest import mock

import psutil
import pytest
import redis
import requests

from lab.runtime.databases import embedded_postgresql, private_database, unreachable_reason
from lab.runtime.process import ManagedProcess, free_port, wait_until
from lab.runtime.redis_server import RedisServer
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
RELAY_CHECK_INTERVAL = 0.5  # seconds: the relay forgets posted rows and finds lost jobs this often


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

    def outbox_rows(self) -> int:
        """Tweets in the outbox: not queued yet, or queued and not yet known as posted."""
        with sqlite3.connect(f"file:{self.data_dir / 'twitpic.sqlite3'}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def idle(self) -> bool:
        """The outbox is empty, and no job is queued, taken by a job worker, running, or waiting to
        be tried again. (Not "no job worker busy": a job worker killed while busy stays listed as
        busy until its record expires.)"""
        from twitpic.queue import tweets_queue

        if self.outbox_rows():
            return False
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
    env["TWITPIC_RELAY_CHECK_INTERVAL"] = str(RELAY_CHECK_INTERVAL)
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


# -- the relay on its own: a database and a Redis ----------------------------------------------

BACKENDS = ["sqlite", "postgresql", "mariadb"]


@pytest.fixture(scope="session")
def postgresql_server(tmp_path_factory):
    """The PostgreSQL of this run: the one named in TWITPIC_TEST_POSTGRESQL_URL, else the embedded
    one, started once (lab/runtime/postgres_server.py)."""
    with embedded_postgresql(tmp_path_factory.mktemp("postgresql")) as version:
        yield version


class Outbox:
    """The stage's database (its tables made) and a Redis of its own, with the settings naming
    both: what the relay works with."""

    def __init__(self, settings: dict):
        from twitpic.db import Database
        from twitpic.queue import connect, tweets_queue

        self.settings = settings
        self.db = Database(settings["DATABASE_URL"], settings["DATABASE_TIMEOUT"])
        self.queue = tweets_queue(connect(settings))

    def another_relay(self) -> "Outbox":
        """A second relay's own connections to the same database and Redis."""
        return Outbox(self.settings)

    def stage(self, count: int, prefix: str = "comment") -> list[str]:
        """`count` tweets saved in the outbox, as the web requests save them; their tweet ids."""
        from twitpic.outbox import add_tweet

        tweet_ids = [f"{prefix}-{n}" for n in range(1, count + 1)]
        with self.db.transaction():
            for tweet_id in tweet_ids:
                add_tweet(self.db, tweet_id, "bob", f"tweet {tweet_id} https://twitpic.example/p")
        return tweet_ids

    def unsent(self) -> list[str]:
        return [r["tweet_id"] for r in self.db.all("SELECT tweet_id FROM outbox WHERE sent_at IS NULL")]

    def rows(self) -> list[str]:
        return sorted(r["tweet_id"] for r in self.db.all("SELECT tweet_id FROM outbox"))

    def close(self) -> None:
        self.db.close()
        self.queue.connection.close()


@pytest.fixture(params=BACKENDS)
def outbox(request, tmp_path, monkeypatch):
    """An Outbox on each backend in turn."""
    from twitpic.db import init_db
    from twitpic.settings import settings_from_environment

    backend = request.param
    if backend == "postgresql":
        request.getfixturevalue("postgresql_server")
    reason = unreachable_reason(backend)
    if reason:  # no server: say how to point the tests at one
        pytest.skip(f"{backend}: {reason} to a server where you may create databases (docs/setup.md says how)")
    with (
        private_database(backend, tmp_path, prefix="twitpic_test") as url,
        RedisServer(tmp_path / "redis") as redis_server,
    ):
        monkeypatch.setenv("TWITPIC_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("TWITPIC_DATABASE_URL", url)
        monkeypatch.setenv("REDIS_URL", redis_server.url)
        settings = settings_from_environment()
        init_db(url, settings["DATABASE_TIMEOUT"])
        bench = Outbox(settings)
        try:
            yield bench
        finally:
            bench.close()
