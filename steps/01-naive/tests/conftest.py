"""Stage 01's test bench: a real fake Twitter and the stage's real gunicorn, on free ports.

The site runs exactly the Procfile's `web` line with a fixed pool of sync workers, the same
model as the case study's PHP worker pool.
"""

from pathlib import Path

import psutil
import pytest

from lab.runtime.process import ManagedProcess, free_port
from lab.runtime.stages import Stage
from lab.runtime.up import stage_environment, start_stage
from lab.testing.fixtures import running_twitter, twitter  # noqa: F401  (the fake Twitter, fresh for each test)
from lab.testing.site_client import SiteClient

STAGE = Stage(Path(__file__).resolve().parents[1])
WEB_WORKERS = 2  # small on purpose: two stuck requests are enough to take the site down
DRAIN_SECONDS = 3.0  # how long a test waits for tweets to appear after Twitter recovers


class Site(SiteClient):
    """The running site: a client for its pages, plus its gunicorn and its data folder."""

    def __init__(self, base_url: str, web: ManagedProcess, data_dir: Path, workers: int):
        super().__init__(base_url)
        self.web = web
        self.data_dir = data_dir
        self.workers = workers

    def web_worker_pids(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.web.pid).children()]

    def idle(self) -> bool:
        """Nothing runs in the background in this stage: each tweet is posted inside its request."""
        return True


@pytest.fixture(scope="module")
def site(running_twitter, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    env = stage_environment(
        data_dir=data_dir,
        workers=WEB_WORKERS,
        web_port=free_port(),
        twitter_port=running_twitter.port,
        twitter_control_port=running_twitter.control_port,
    )
    [web] = start_stage(STAGE, env, skip=frozenset({"twitter"}))
    try:
        yield Site(f"http://127.0.0.1:{env['WEB_PORT']}", web, data_dir, WEB_WORKERS)
    finally:
        web.stop()
        web.remove_log()


@pytest.fixture
def drain_seconds() -> float:
    return DRAIN_SECONDS


@pytest.fixture
def photo(site, twitter) -> int:
    """A fresh photo to comment on (uploaded without a tweet)."""
    return site.new_photo()
