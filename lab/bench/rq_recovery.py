"""`workbook bench rq-recovery [--quick] [--out DIR]`: how long a killed RQ worker's job waits.

An RQ worker is killed with SIGKILL, its work horse with it, while the job it runs waits on
Twitter. Then Twitter answers again, and the clock runs until the tweet is on the fake Twitter.
Two setups, side by side in one run, each with two workers, its own Redis and its own Twitter:

- stage 04's worker command (`python -m twitpic.worker`): its supervisor sees the worker die and
  hands the worker's jobs to RQ's abandoned-job handling at once;
- RQ alone: two `rq worker --with-scheduler` processes, with the stage's worker class. The
  surviving worker finds the job only when the job's heartbeat has run out (the job timeout, at
  most 30 s, plus 60 s) and its next maintenance pass comes round. An idle worker waits in a
  blocking pop for the worker TTL less 15 s and runs maintenance only when it wakes: by RQ's
  defaults (TTL 420 s, maintenance every 600 s) that is up to 7 minutes. Here both are cut to
  the maintenance interval, 60 s (10 s with --quick), so that the run ends in minutes.

The stage's code runs only in processes started in the stage's folder, so the lab never imports
the stage's `twitpic` package itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from lab.runtime.process import (
    ManagedProcess,
    descendants,
    free_port,
    process_calling,
    wait_until,
)
from lab.runtime.redis_server import RedisServer
from lab.runtime.stages import STEPS_DIR
from lab.runtime.timescale import ENV_VAR as TIME_SCALE_ENV
from lab.runtime.timescale import whole_seconds
from lab.runtime.up import stage_environment
from lab.twitter import FakeTwitter

STAGE_DIR = STEPS_DIR / "04-rq"
SETUPS = ("supervisor", "rq-alone")
DESCRIPTIONS = {
    "supervisor": "stage 04's worker command: the supervisor hands the job back at once",
    "rq-alone": "rq worker --with-scheduler: found at heartbeat's end and a maintenance pass",
}
WORKERS = 2
RQ_DEFAULT_MAINTENANCE_S = 600
RQ_DEFAULT_WORKER_TTL_S = 420

# Run in the stage's folder: create the site's tables and queue one tweet the stage's own way.
ENQUEUE_ONE = """
import sys
from twitpic.db import init_db
from twitpic.queue import connect, enqueue_tweet, tweets_queue
from twitpic.settings import settings_from_environment
settings = settings_from_environment()
init_db(settings["DATABASE_URL"])
enqueue_tweet(tweets_queue(connect(settings["REDIS_URL"])), "bob", sys.argv[1], settings["TIME_SCALE"])
"""


def job_timeout(time_scale: float) -> int:
    return whole_seconds(20, time_scale)  # as stage 04's enqueue_tweet sets it (JOB_TIMEOUT)


def heartbeat_seconds(time_scale: float) -> int:
    """How long RQ keeps a started job before it counts as abandoned (RQ's get_heartbeat_ttl)."""
    return min(job_timeout(time_scale), 30) + 60


def worker_processes(setup: str, env: dict, redis_url: str, maintenance_s: int) -> list[ManagedProcess]:
    if setup == "supervisor":
        argv = [sys.executable, "-m", "twitpic.worker", "--workers", str(WORKERS),
                "--maintenance-interval", str(maintenance_s)]
        return [ManagedProcess("worker", argv, cwd=STAGE_DIR, env=env)]
    rq = str(Path(sys.executable).with_name("rq"))
    argv = [rq, "worker", "--with-scheduler", "--serializer", "json",
            "--worker-class", "twitpic.worker.TweetWorker",
            "--maintenance-interval", str(maintenance_s),
            "--worker-ttl", str(maintenance_s + 15),  # an idle worker wakes every maintenance_s
            "--url", redis_url, "tweets"]
    return [ManagedProcess(f"rq-worker-{n}", argv, cwd=STAGE_DIR, env=env) for n in range(WORKERS)]


def measure(setup: str, time_scale: float, maintenance_s: int, scratch: Path) -> dict:
    """Kill the worker whose job waits on Twitter; seconds until the tweet is posted."""
    folder = scratch / setup
    marker = f"killed worker {uuid.uuid4().hex[:8]}"  # the ledger is searched by this prefix
    redis_server = RedisServer(folder / "redis").start()
    twitter = FakeTwitter.start(latency_ms=(50, 50), mode="hang", time_scale=1.0)
    workers: list[ManagedProcess] = []
    try:
        env = stage_environment(
            data_dir=folder / "data", workers=1, web_port=free_port(),
            twitter_port=twitter.port, twitter_control_port=twitter.control_port,
        )
        env.update(REDIS_URL=redis_server.url, **{TIME_SCALE_ENV: str(time_scale)})
        subprocess.run([sys.executable, "-c", ENQUEUE_ONE, f"{marker} https://twitpic.example/p"],
                       cwd=STAGE_DIR, env={**os.environ, **env},
                       check=True, capture_output=True, timeout=60)
        workers = [process.start() for process in worker_processes(setup, env, redis_server.url, maintenance_s)]
        wait_until(lambda: twitter.state()["held"] == 1, timeout=30, what="the job calls Twitter")
        horse = psutil.Process(process_calling(  # the work horse in its call
            lambda: [child.pid for worker in workers for child in descendants(worker.pid)], twitter.port))
        worker = horse.parent()
        worker.send_signal(signal.SIGKILL)  # the whole worker, as the out-of-memory killer would
        horse.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: twitter.state()["held"] == 0, timeout=10, what="the call dropped")
        twitter.set_mode("up")
        limit = heartbeat_seconds(time_scale) + maintenance_s + 60
        wait_until(lambda: twitter.tweets_starting_with([marker])[marker], timeout=limit, interval=0.05,
                   what=f"the tweet posted ({setup})")
        recovered = time.monotonic() - killed
        time.sleep(1)  # room for a second post, if there were going to be one
        posted = len(twitter.tweets_starting_with([marker])[marker])
    finally:
        for process in workers:
            process.stop()
            process.remove_log()
        twitter.stop()
        redis_server.stop()
    return {
        "setup": setup,
        "recovery_s": round(recovered, 2),
        "posted": posted,
        "heartbeat_s": heartbeat_seconds(time_scale),
        "maintenance_interval_s": maintenance_s,
        "time_scale": time_scale,
    }


def format_table(rows: list[dict]) -> str:
    by_setup = {row["setup"]: row for row in rows}
    first = rows[0]
    lines = [
        f"rq-recovery: a worker killed with SIGKILL while its job waits on Twitter; {WORKERS} workers; "
        f"job heartbeat {first['heartbeat_s']} s; idle workers wake and clean up every "
        f"{first['maintenance_interval_s']} s (RQ's defaults: {RQ_DEFAULT_WORKER_TTL_S - 15} s and "
        f"{RQ_DEFAULT_MAINTENANCE_S} s)",
        f"{'setup':<12} {'recovered in':>13} {'posted':>7}  how",
    ]
    for row in rows:
        lines.append(
            f"{row['setup']:<12} {row['recovery_s']:>11.1f} s {row['posted']:>7}  {DESCRIPTIONS[row['setup']]}"
        )
    if {"supervisor", "rq-alone"} <= by_setup.keys() and by_setup["supervisor"]["recovery_s"] > 0:
        ratio = by_setup["rq-alone"]["recovery_s"] / by_setup["supervisor"]["recovery_s"]
        lines.append(f"rq alone takes {ratio:.0f}x as long as the supervisor")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbook bench rq-recovery",
        description="How long a job waits after its RQ worker is killed: stage 04's supervisor "
        "against plain `rq worker`, side by side.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="time scale 0.1 and maintenance every 10 s (about 75 s instead of 2-3 min)")
    parser.add_argument("--maintenance-interval", type=int, default=None,
                        help="seconds between RQ's registry clean-ups (default 60, 10 with --quick)")
    parser.add_argument("--setups", default=",".join(SETUPS), help=f"which setups (default {','.join(SETUPS)})")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write DIR/rq-recovery.json and DIR/rq-recovery.txt")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setups = [name.strip() for name in args.setups.split(",") if name.strip()]
    unknown = [name for name in setups if name not in SETUPS]
    if unknown or not setups:
        parser.error(f"--setups takes some of {', '.join(SETUPS)}")
    time_scale = 0.1 if args.quick else 1.0
    maintenance_s = args.maintenance_interval or (10 if args.quick else 60)
    if maintenance_s < 1:
        parser.error("--maintenance-interval must be at least 1")
    print(f"killing a worker mid-job in {len(setups)} setup(s), side by side; "
          f"at most {heartbeat_seconds(time_scale) + maintenance_s} s", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="rq-recovery-bench-"))
    try:
        with ThreadPoolExecutor(len(setups)) as pool:
            rows = list(pool.map(lambda setup: measure(setup, time_scale, maintenance_s, scratch), setups))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = format_table(rows)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "rq-recovery.json").write_text(json.dumps(rows, indent=2) + "\n")
        (args.out / "rq-recovery.txt").write_text(table + "\n")
        print(f"wrote {args.out / 'rq-recovery.json'} and {args.out / 'rq-recovery.txt'}")
    return 0 if all(row["posted"] == 1 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
