"""Stage 03's test bench: a real fake Twitter, and the stage's real queue server, worker
processes and gunicorn, all started from its Procfile on free ports.
"""

from pathlib import Path

import psutil
import pytest

from lab.kestrel.stats import read_stats
from lab.runtime.process import ManagedProcess, free_port, wait_until
from lab.runtime.stages import Stage
from lab.runtime.up import stage_environment, start_stage
from lab.testing.fixtures import running_twitter, twitter  # noqa: F401  (the fake Twitter, fresh for each test)
from lab.testing.site_client import SiteClient

STAGE = Stage(Path(__file__).resolve().parents[1])
WEB_WORKERS = 2  # small on purpose: two stuck requests are enough to take the site down
WORKERS = 4  # background worker processes
TIME_SCALE = 0.1  # the worker's timeouts, waits and retries, 10 times faster
DRAIN_SECONDS = 10.0  # how long a test waits for tweets to appear after Twitter recovers


class Site(SiteClient):
    """The running site: a client for its pages, plus its processes and its data folder."""

    job_workers = WORKERS

    def __init__(
        self, base_url: str, processes: dict[str, ManagedProcess], env: dict, data_dir: Path, workers: int,
    ):
        super().__init__(base_url)
        self.processes = processes
        self.env = env
        self.data_dir = data_dir
        self.workers = workers

    @property
    def kestrel_port(self) -> int:
        return int(self.env["KESTREL_PORT"])

    def queue_stats(self, queue: str = "tweets") -> dict[str, int]:
        prefix = f"queue_{queue}_"
        stats = read_stats("127.0.0.1", self.kestrel_port)
        return {name.removeprefix(prefix): int(value) for name, value in stats.items() if name.startswith(prefix)}

    def idle(self) -> bool:
        """No tweet waits in the queue or is being tried (open) by a worker."""
        stats = self.queue_stats()
        return stats.get("items", 0) + stats.get("open_transactions", 0) == 0

    def background_worker_pids(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.processes["worker"].pid).children()]

    def crash_queue_server(self) -> None:
        """SIGKILL the queue server, then start it again on the same port and data folder."""
        self.kill_the_queue_server()
        self.start_the_queue_server()

    def kill_the_queue_server(self) -> None:
        """SIGKILL the queue server: a crash, as the out-of-memory killer would do it."""
        self.processes["kestrel"].kill()

    def start_the_queue_server(self) -> None:
        """Start the queue server again, from its journal, as a process manager would."""
        self.processes["kestrel"].remove_log()
        [self.processes["kestrel"]] = start_stage(STAGE, self.env, skip=frozenset({"twitter", "worker", "web"}))


@pytest.fixture(scope="module")
def site(running_twitter, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    env = stage_environment(
        data_dir=data_dir,
        workers=WEB_WORKERS,
        web_port=free_port(),
        twitter_port=running_twitter.port,
        twitter_control_port=running_twitter.control_port,
        kestrel_port=free_port(),
    )
    env.update(WORKER_COUNT=str(WORKERS), WORKBOOK_TIME_SCALE=str(TIME_SCALE))
    started = start_stage(STAGE, env, skip=frozenset({"twitter"}))
    processes = {process.name.split(":")[1]: process for process in started}
    site = Site(f"http://127.0.0.1:{env['WEB_PORT']}", processes, env, data_dir, WEB_WORKERS)
    try:
        yield site
    finally:
        for name in ("web", "worker", "kestrel"):
            site.processes[name].stop()
            site.processes[name].remove_log()


@pytest.fixture(autouse=True)
def settled_queue(request):
    """Tests that use the site start with an empty queue: nothing left over from the test before."""
    if "site" in request.fixturenames:
        site = request.getfixturevalue("site")
        twitter = request.getfixturevalue("twitter")  # `up`, so that leftovers can drain
        wait_until(
            lambda: site.queue_stats().get("items", 0) + site.queue_stats().get("open_transactions", 0) == 0,
            timeout=DRAIN_SECONDS,
            what="the queue drained",
        )
        twitter.reset()  # what drained belongs to the test before


@pytest.fixture
def drain_seconds() -> float:
    return DRAIN_SECONDS


@pytest.fixture
def photo(site, twitter) -> int:
    """A fresh photo to comment on (uploaded without a tweet)."""
    return site.new_photo()
