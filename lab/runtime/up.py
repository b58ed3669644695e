"""`workbook up STAGE`: run a stage's Procfile on 127.0.0.1, print its URLs, stop it all on Ctrl-C."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from lab.runtime.process import LOCALHOST, ManagedProcess, ProcessError
from lab.runtime.stages import RELEASE, Stage

# Which environment variable holds the port each kind of process answers on.
PORT_VARIABLES = {
    "web": "WEB_PORT",
    "twitter": "TWITTER_CONTROL_PORT",
    "kestrel": "KESTREL_PORT",
    "redis": "REDIS_PORT",
}
# Servers first, then the workers that use them, then the site: each starts once what it talks to answers.
START_ORDER = {"worker": 1, "web": 2}  # every other process (a server) is 0


def stage_environment(
    *,
    data_dir: Path,
    workers: int,
    web_port: int,
    twitter_port: int,
    twitter_control_port: int,
    kestrel_port: int = 22133,
    redis_port: int = 6380,
) -> dict[str, str]:
    """What a stage's Procfile lines read: the same variables for `workbook up` and the tests."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "WEB_PORT": str(web_port),
        "WEB_WORKERS": str(workers),
        "TWITTER_PORT": str(twitter_port),
        "TWITTER_CONTROL_PORT": str(twitter_control_port),
        "TWITTER_API_URL": f"http://{LOCALHOST}:{twitter_port}",
        "TWITPIC_DATA_DIR": str(data_dir),
        "KESTREL_PORT": str(kestrel_port),
        "REDIS_PORT": str(redis_port),
        "REDIS_URL": f"redis://{LOCALHOST}:{redis_port}/0",
    }


def own_redis_url() -> str | None:
    """A Redis the user runs themselves (REDIS_URL): `workbook up` uses it instead of starting one."""
    return os.environ.get("REDIS_URL") or None


def start_stage(
    stage: Stage,
    env: dict[str, str],
    log_dir: Path | None = None,
    skip: frozenset[str] = frozenset(),
) -> list[ManagedProcess]:
    """Start the Procfile's processes (but `skip`) in START_ORDER; all or nothing. The `release`
    command (the database's tables) runs to its end first, unless only servers are started."""
    names = sorted((n for n in stage.processes() if n not in skip), key=lambda name: START_ORDER.get(name, 0))
    started: list[ManagedProcess] = []
    try:
        if any(name in START_ORDER for name in names):
            stage.release(env=env, log_path=log_dir / f"{RELEASE}.log" if log_dir else None)
        for name in names:
            port = int(env[PORT_VARIABLES[name]]) if name in PORT_VARIABLES else None
            log_path = log_dir / f"{name}.log" if log_dir else None
            process = stage.process(name, env=env, port=port, log_path=log_path)
            started.append(process.start(timeout=30))
    except BaseException:
        stop_all(started)
        raise
    return started


def stop_all(processes: list[ManagedProcess]) -> None:
    for process in reversed(processes):
        process.stop()


def run_up(stage_name: str, *, data_dir: Path | None = None, **settings) -> int:
    """Start a stage's processes in the foreground until Ctrl-C. `settings` are
    stage_environment's (workers, ports); what is printed is read back from the environment."""
    stage = Stage.find(stage_name)
    # Ctrl-C (SIGINT) stops everything, even when a script started us in the background, where
    # the shell makes SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    data_dir = (data_dir or stage.path / "data").resolve()
    env = stage_environment(data_dir=data_dir, **settings)
    web_port, twitter_port, kestrel_port = env["WEB_PORT"], env["TWITTER_PORT"], env["KESTREL_PORT"]
    skip = frozenset()
    if own_redis_url():
        env["REDIS_URL"] = own_redis_url()
        skip = frozenset({"redis"})
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"starting {stage.name}: {', '.join(stage.procfile())} (logs in {log_dir})", flush=True)
    try:
        processes = start_stage(stage, env, log_dir, skip=skip)
    except ProcessError as error:
        print(f"workbook up: {error}", flush=True)
        return 1
    print(f"  site:          http://{LOCALHOST}:{web_port}/  ({env['WEB_WORKERS']} gunicorn workers)")
    print(f"  fake Twitter:  http://{LOCALHOST}:{env['TWITTER_CONTROL_PORT']}/  (timeline and outage modes)")
    print(f"  Twitter API:   http://{LOCALHOST}:{twitter_port}/2/tweets")
    if "redis" in stage.processes():
        print(f"  Redis:         {env['REDIS_URL']}  (try: rq info --url {env['REDIS_URL']})")
        print(f"  queue status:  http://{LOCALHOST}:{web_port}/status")
    if "kestrel" in stage.processes():
        print(
            f"  queue server:  {LOCALHOST}:{kestrel_port}  "
            f"(try: workbook queue-stats --port {kestrel_port})"
        )
    print("Ctrl-C stops everything.", flush=True)
    try:
        while all(process.alive for process in processes):
            time.sleep(0.2)
        dead = [process for process in processes if not process.alive]
        for process in dead:
            print(f"{process.name} exited with code {process.returncode}:\n{process.log_tail()}", flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        stop_all(processes)
