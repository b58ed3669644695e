"""A whole stage running for a test of the lab: its Procfile's processes on free ports, against
the test's fake Twitter, stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.runtime.process import ManagedProcess, free_port
from lab.runtime.stages import Stage
from lab.runtime.up import stage_environment, start_stage, stop_all
from lab.testing.site_client import SiteClient


@contextmanager
def running_stage(
    stage_name: str, twitter, data_dir: Path, job_workers: int = 2, web_workers: int = 2,
) -> Iterator[tuple[SiteClient, dict, dict[str, ManagedProcess]]]:
    """The site's client, the stage's environment, and its processes by name (`web`, `worker.1`)."""
    env = stage_environment(
        data_dir=data_dir, workers=web_workers, web_port=free_port(), twitter_port=twitter.port,
        twitter_control_port=twitter.control_port, kestrel_port=free_port(), redis_port=free_port(),
    )
    env["WORKER_COUNT"] = str(job_workers)
    started = start_stage(Stage.find(stage_name), env, skip=frozenset({"twitter"}))
    processes = {process.name.split(":")[1]: process for process in started}
    try:
        yield SiteClient(f"http://127.0.0.1:{env['WEB_PORT']}"), env, processes
    finally:
        stop_all(list(processes.values()))
