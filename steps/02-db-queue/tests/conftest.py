"""Stage 02's test bench: a real fake Twitter, the stage's real gunicorn and worker processes,
and real databases: SQLite, PostgreSQL (the embedded server, unless you name one) and MariaDB
when its server answers.

Each test that needs a server database gets a private database of its own, created for it and
dropped after it: no test touches data it did not make.
"""

from pathlib import Path

import psutil
import pytest

from lab.runtime.databases import embedded_postgresql, private_database, unreachable_reason
from lab.runtime.postgres_server import NoPostgres, PostgresServer
from lab.runtime.process import ManagedProcess, free_port
from lab.runtime.stages import Stage
from lab.runtime.up import stage_environment, start_stage
from lab.testing.fixtures import running_twitter, twitter  # noqa: F401  (the fake Twitter, fresh for each test)
from lab.testing.site_client import SiteClient

STAGE = Stage(Path(__file__).resolve().parents[1])
WEB_WORKERS = 2  # small on purpose: two stuck requests are enough to take the site down
WORKERS = 2  # background worker processes
TIME_SCALE = 0.1  # the worker's timeouts, leases, retries and polling, 10 times faster
DRAIN_SECONDS = 10.0  # how long a test waits for tweets to appear after Twitter recovers

BACKENDS = ["sqlite", "postgresql", "mariadb"]
DATABASE_URL = "TWITPIC_DATABASE_URL"  # the stage's setting: the site's database, SQLite unless named


class Site(SiteClient):
    """The running site: a client for its pages, plus its processes and its data folder."""

    def __init__(
        self, base_url: str, web: ManagedProcess, worker: ManagedProcess, data_dir: Path, workers: int,
        database_url: str | None = None,
    ):
        super().__init__(base_url)
        self.web = web
        self.worker = worker
        self.data_dir = data_dir
        self.workers = workers
        self.database_url = database_url or f"sqlite:///{data_dir / 'twitpic.sqlite3'}"  # the site's database

    def web_worker_pids(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.web.pid).children()]

    def background_worker_pids(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.worker.pid).children()]

    def idle(self) -> bool:
        """No job waits or runs: every one is done or failed."""
        from twitpic.db import Database

        db = Database(self.database_url)
        try:
            row = db.one("SELECT COUNT(*) AS n FROM tweet_jobs WHERE status IN ('pending', 'claimed')")
            return row["n"] == 0
        finally:
            db.close()


@pytest.fixture(scope="module")
def site(running_twitter, tmp_path_factory):
    yield from running_site(running_twitter, tmp_path_factory.mktemp("data"))


@pytest.fixture
def site_on_its_own_postgresql(running_twitter, tmp_path):
    """The site on a PostgreSQL server of its own, for a test that kills the server: `(site,
    server)`. Always the embedded server: a server you named is never killed."""
    try:
        server = PostgresServer(tmp_path / "postgresql").start()
    except NoPostgres as problem:
        pytest.skip(f"postgresql: {problem}")
    try:
        for site in running_site(running_twitter, tmp_path / "data", {DATABASE_URL: server.url}):
            yield site, server
    finally:
        server.stop()


def running_site(running_twitter, data_dir: Path, settings: dict[str, str] | None = None):
    data_dir.mkdir(parents=True, exist_ok=True)
    env = stage_environment(
        data_dir=data_dir,
        workers=WEB_WORKERS,
        web_port=free_port(),
        twitter_port=running_twitter.port,
        twitter_control_port=running_twitter.control_port,
    )
    env.update(
        WORKER_COUNT=str(WORKERS),
        WORKBOOK_TIME_SCALE=str(TIME_SCALE),
        # The site's own tests count one tweet per comment, so its workers claim safely here. The
        # stage's default, `naive`, races by chance on a busy site; test_invariants.py and
        # test_race.py show that race on purpose, every time.
        WORKER_STRATEGY="atomic",
        **(settings or {}),
    )
    worker, web = start_stage(STAGE, env, skip=frozenset({"twitter"}))
    try:
        yield Site(f"http://127.0.0.1:{env['WEB_PORT']}", web, worker, data_dir, WEB_WORKERS,
                   env.get(DATABASE_URL))
    finally:
        web.stop()
        worker.stop()
        web.remove_log()
        worker.remove_log()


@pytest.fixture
def drain_seconds() -> float:
    return DRAIN_SECONDS


@pytest.fixture
def photo(site, twitter) -> int:
    """A fresh photo to comment on (uploaded without a tweet)."""
    return site.new_photo()


# -- the race window --------------------------------------------------------------------------


@pytest.fixture
def paused_worker():
    """`paused_worker(settings, pause)`: the stage's Worker, calling `pause()` each time it has read
    the next job and not yet claimed it. That is the window where two job workers can pick the same
    row; a barrier there makes the race happen every time, not by chance."""
    from twitpic import claims
    from twitpic.db import Database
    from twitpic.worker import Worker

    class PausingDatabase(Database):
        def __init__(self, url: str, pause):
            super().__init__(url)
            self.pause = pause

        def one(self, statement: str, params: tuple = ()):
            row = super().one(statement, params)
            if statement.startswith(claims.NEXT_JOB):  # with or without FOR UPDATE
                self.pause()
            return row

    def make(settings, pause):
        worker = Worker(settings)
        worker.db.close()
        worker.db = PausingDatabase(settings.database_url, pause)
        return worker

    return make


# -- databases -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgresql_server(tmp_path_factory):
    """The PostgreSQL of this run: the one named in TWITPIC_TEST_POSTGRESQL_URL, else the embedded
    one, started once (lab/runtime/postgres_server.py). Its version if embedded, else None."""
    with embedded_postgresql(tmp_path_factory.mktemp("postgresql")) as version:
        yield version


def _database(backend: str, tmp_path: Path, request):
    from twitpic.db import init_db

    if backend == "postgresql":
        request.getfixturevalue("postgresql_server")
    reason = unreachable_reason(backend)
    if reason:  # no server: say how to point the tests at one
        pytest.skip(f"{backend}: {reason} to a server where you may create databases (docs/setup.md says how)")
    with private_database(backend, tmp_path, prefix="twitpic_test") as url:
        init_db(url)
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """A new, empty database with the site's tables, on each backend in turn."""
    yield from _database(request.param, tmp_path, request)


@pytest.fixture
def postgresql_url(tmp_path, request):
    yield from _database("postgresql", tmp_path, request)


def _enqueue(url: str, texts: list[str]) -> None:
    from twitpic.db import Database
    from twitpic.jobs import enqueue_tweet

    db = Database(url)
    try:
        with db.transaction():
            for text in texts:
                enqueue_tweet(db, "bob", f"{text} https://twitpic.example/p")
    finally:
        db.close()


@pytest.fixture
def enqueue():
    """`enqueue(url, texts)`: one job per text, added in one transaction as the site adds them."""
    return _enqueue


# -- the duplicates table printed at the end of the run --------------------------------------

RACE_TABLE = "02-db-queue: many workers draining the jobs table"
RACE_COLUMNS = ("strategy", "backend", "delivered", "duplicates", "lost")


class RaceResults:
    """`append((strategy, database_url, delivered, duplicates, lost))`: one row of the table, its
    backend named with the server's version."""

    def __init__(self, table, request):
        self.table, self.request = table, request

    def append(self, row) -> None:
        strategy, url, *counts = row
        self.table.append((strategy, self.backend(url), *counts))

    def backend(self, url: str) -> str:
        from twitpic.db import Database

        db = Database(url)
        try:
            if url.startswith("sqlite"):
                return f"sqlite {db.one('SELECT sqlite_version() AS version')['version']}"
            if url.startswith("postgresql"):
                version = db.one("SELECT current_setting('server_version') AS version")["version"]
                embedded = self.request.getfixturevalue("postgresql_server")
                return f"postgresql {version}" + (" (embedded)" if embedded else "")
            return f"mariadb {db.one('SELECT VERSION() AS version')['version'].split('-')[0]}"
        finally:
            db.close()


@pytest.fixture
def race_results(summary_table, request):
    """`race_results.append((strategy, database_url, delivered, duplicates, lost))`: one row of
    the table printed at the end of the run (summary_table comes from the workbook's pytest plugin)."""
    return RaceResults(summary_table(RACE_TABLE, RACE_COLUMNS), request)
