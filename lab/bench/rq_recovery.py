"""`workbook bench rq-recovery [--quick] [--out DIR]`: how long a killed job worker's tweet waits.

A job worker is killed with SIGKILL while the tweet it posts waits on a hung Twitter; Twitter
answers again at once, and the clock runs until the tweet is on the fake Twitter. Three setups,
side by side in one run, each a whole stage from its Procfile with its own Twitter:

- `03-worker-killed`: stage 03's job worker. Kestrel gives the open item back the moment the job
  worker's connection closes (a reliable read), and another job worker takes it.
- `04-worker-killed`: one of stage 04's RQ job workers, not its work horse. The horse runs in a
  process group of its own and lives on: it gives the call up at its read timeout and asks RQ to
  try again; RQ's scheduler puts the job back within a second.
- `04-crash`: the RQ job worker and its horse together, as a machine that dies takes both. Nobody
  is left to say the job ended: RQ counts it abandoned when its heartbeat has run out (60 s after
  the last one, plus the smaller of the job's timeout and the job monitoring interval), at the
  next maintenance pass of a living job worker, and runs it again: its crash retry.

The time scale shrinks the story's durations (Twitter's timeouts, RQ's monitoring and maintenance
intervals) but not RQ's 60 s, which no setting changes.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from lab.bench.figures import write_results
from lab.runtime.process import connects_to, free_port, process_calling, wait_until
from lab.runtime.stages import Stage
from lab.runtime.timescale import ENV_VAR as TIME_SCALE_ENV
from lab.runtime.timescale import story_settings
from lab.runtime.up import stage_environment, start_stage, stop_all
from lab.testing.site_client import SiteClient
from lab.twitter import FakeTwitter

SETUPS = ("03-worker-killed", "04-worker-killed", "04-crash")
DESCRIPTIONS = {
    "03-worker-killed": "Kestrel reopens the item when the connection drops",
    "04-worker-killed": "the horse lives on, gives the call up, and RQ tries again",
    "04-crash": "RQ finds the job abandoned when its heartbeat runs out",
}
JOB_WORKERS = 2
RQ_HEARTBEAT_GRACE_S = 60  # RQ's get_heartbeat_ttl adds it to every job heartbeat
RQ_SCHEDULER_INTERVAL_S = 1


def rq_bound(time_scale: float, job_timeout: int) -> dict[str, float]:
    """How long RQ may take, by the settings the lab gives stage 04 at this scale."""
    story = story_settings(time_scale)
    call = float(story["TWITPIC_TWITTER_CONNECT_TIMEOUT"]) + float(story["TWITPIC_TWITTER_READ_TIMEOUT"])
    retry = 1.5 * float(story["TWITPIC_RETRY_FIRST"]) + RQ_SCHEDULER_INTERVAL_S
    heartbeat = min(job_timeout, int(story["RQ_JOB_MONITORING_INTERVAL"])) + RQ_HEARTBEAT_GRACE_S
    # A living job worker cleans up every maintenance interval, if it is awake: an idle one waits
    # for a job for its worker TTL less 15 s before it looks again.
    maintenance = max(int(story["RQ_MAINTENANCE_INTERVAL"]), int(story["RQ_WORKER_TTL"]) - 15)
    return {
        "04-worker-killed": call + retry,
        "04-crash": heartbeat + maintenance + retry,
    }


def measure(setup: str, time_scale: float, scratch: Path) -> dict:
    """Kill the job worker whose tweet waits on Twitter; seconds until the tweet is posted."""
    stage = Stage.find(setup[:2])
    folder = scratch / setup
    marker = f"killed {uuid.uuid4().hex[:8]}"  # the ledger is searched by this prefix
    twitter = FakeTwitter.start(latency_ms=(50, 50), time_scale=1.0)
    processes = []
    try:
        env = stage_environment(
            data_dir=folder / "data", workers=1, web_port=free_port(), twitter_port=twitter.port,
            twitter_control_port=twitter.control_port, kestrel_port=free_port(), redis_port=free_port(),
        )
        env.update(WORKER_COUNT=str(JOB_WORKERS), **{TIME_SCALE_ENV: repr(time_scale)})
        processes = start_stage(stage, env, skip=frozenset({"twitter"}))
        site = SiteClient(f"http://127.0.0.1:{env['WEB_PORT']}")
        photo = site.new_photo()
        twitter.set_mode("hang")
        assert site.comment(photo, marker).status_code == 303

        def job_worker_family() -> list[int]:
            return [pid for process in processes if ":worker" in process.name
                    for pid in (process.pid, *(child.pid for child in psutil.Process(process.pid).children()))]

        caller = psutil.Process(process_calling(job_worker_family, twitter.port, timeout=30))
        if setup.startswith("04"):
            worker, horse = caller.parent(), caller
            worker.send_signal(signal.SIGKILL)  # the job worker...
            if setup == "04-crash":
                horse.send_signal(signal.SIGKILL)  # ...and its work horse with it
        else:
            caller.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        if setup != "04-worker-killed":
            wait_until(lambda: not connects_to(caller.pid, twitter.port), timeout=10, what="the call dropped")
        else:  # the horse holds its call until its read timeout: let the next try through
            wait_until(lambda: twitter.stats()["rejected"].get("abandoned", 0) >= 1, timeout=60,
                       what="the call given up")
        twitter.set_mode("up")
        wait_until(lambda: twitter.tweets_starting_with([marker])[marker], timeout=300, interval=0.05,
                   what=f"the tweet posted ({setup})")
        recovered = time.monotonic() - killed
        time.sleep(1)  # room for a second post, if there were going to be one
        posted = len(twitter.tweets_starting_with([marker])[marker])
    finally:
        stop_all(processes)
        for process in processes:
            process.remove_log()
        twitter.stop()
    return {"setup": setup, "recovery_s": round(recovered, 2), "posted": posted, "time_scale": time_scale}


def format_table(rows: list[dict], bounds: dict[str, float]) -> str:
    story = story_settings(rows[0]["time_scale"])
    lines = [
        f"rq-recovery: a job worker killed with SIGKILL while its tweet waits on a hung Twitter; "
        f"{JOB_WORKERS} job workers; time scale {rows[0]['time_scale']:g} (RQ's job monitoring every "
        f"{story['RQ_JOB_MONITORING_INTERVAL']} s, maintenance every {story['RQ_MAINTENANCE_INTERVAL']} s)",
        f"{'setup':<17} {'recovered in':>13} {'bound':>8} {'posted':>7}  how",
    ]
    for row in rows:
        bound = f"{bounds[row['setup']]:.0f} s" if row["setup"] in bounds else "-"
        lines.append(f"{row['setup']:<17} {row['recovery_s']:>11.1f} s {bound:>8} {row['posted']:>7}  "
                     f"{DESCRIPTIONS[row['setup']]}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbook bench rq-recovery",
        description="How long a tweet waits after its job worker is killed: stage 03's reliable read "
        "against RQ's own recovery in stage 04, with the horse alive and with both killed, side by side.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="time scale 0.1 (about 75 s instead of 2-3 min: RQ's 60 s does not shrink)")
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
    bounds = rq_bound(time_scale, stage_job_timeout(time_scale))
    print(f"killing a job worker mid-call in {len(setups)} setup(s), side by side; "
          f"at most {max(bounds.values()):.0f} s", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="rq-recovery-bench-"))
    try:
        with ThreadPoolExecutor(len(setups)) as pool:
            rows = list(pool.map(lambda setup: measure(setup, time_scale, scratch), setups))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for row in rows:
        row["bound_s"] = round(bounds[row["setup"]], 1) if row["setup"] in bounds else None
    table = format_table(rows, bounds)
    print(table)
    if args.out:
        write_results(args.out, "rq-recovery", rows, table)
    return 0 if all(row["posted"] == 1 for row in rows) else 1


def stage_job_timeout(time_scale: float) -> int:
    """Stage 04's job timeout at this scale, as its settings compute it (in the stage's folder:
    the lab never imports the stage's `twitpic` package itself)."""
    import os
    import subprocess

    stage = Stage.find("04")
    env = {**os.environ, **stage.environment({TIME_SCALE_ENV: repr(time_scale)})}
    code = "from twitpic.settings import settings_from_environment as s; print(s()['JOB_TIMEOUT'])"
    result = subprocess.run([sys.executable, "-c", code], cwd=stage.path, env=env, capture_output=True,
                            text=True, check=True, timeout=60)
    return int(result.stdout)


if __name__ == "__main__":
    sys.exit(main())
