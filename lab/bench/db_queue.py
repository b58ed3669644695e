"""`workbook bench db-queue [--quick] [--out DIR]`: stage 02's claim strategies, 1 to 8 workers.

For each backend (SQLite always; PostgreSQL and MariaDB when their servers answer) and each claim
strategy, the stage's own worker (`python -m twitpic.worker`) drains the same number of jobs with
1, 2, 4 and 8 worker processes, posting to the fake Twitter at a fixed latency. Every run gets a
private database, whose tables the stage's `init_db` creates before its workers start. The clock
starts when the jobs are committed, in one transaction, to a table the workers are already
polling, and stops when every job is `done`: process start-up is never timed. The fake Twitter's
ledger says which tweets were posted twice (duplicates) or never (lost).

For `locked-claim`, the bench also times claims under the global lock with nobody waiting: one
claim at a time, that says how many jobs per second the lock allows at most, whatever the number
of job workers.

The stage's code runs only in processes started in the stage's folder (the workers, and a small
helper for the database work), so the lab never imports the stage's `twitpic` package itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import psutil

from lab.bench.db_queue_stage import STAGE_DIR, StageHelper
from lab.bench.db_queue_tables import lock_ceilings, postgresql_verdict, text_table, write_markdown
from lab.runtime.databases import DEFAULT_PORTS, embedded_postgresql, private_database, unreachable_reason
from lab.runtime.process import ManagedProcess, connects_to
from lab.twitter import FakeTwitter

BACKENDS = ("sqlite", "postgresql", "mariadb")
STRATEGIES = ("naive", "locked", "locked-claim", "skip-locked", "atomic")
UNSAFE_STRATEGIES = {"naive"}  # expected to post some tweets twice
UNSUPPORTED = {("sqlite", "skip-locked")}  # SQLite has no SELECT ... FOR UPDATE SKIP LOCKED

FULL_JOBS, FULL_WORKERS = 300, (1, 2, 4, 8)
HOLD_CLAIMS = 200  # claims timed under the global lock, to find where `locked-claim` must stop growing
QUICK_JOBS, QUICK_WORKERS = 50, (1, 4)
DEFAULT_LATENCY_MS = 20

# The worker's default poll interval (0.5 s) would add up to half a second of idling to a run of
# a few seconds; the bench's workers look at the table often, so the queue, not the nap, is timed.
WORKER_POLL_SECONDS = 0.01
SETTLE_SECONDS = 0.05  # after connecting: time for every worker to find the table empty once

ROW_KEYS = ("backend", "strategy", "workers", "jobs_per_s", "duplicates", "lost")

def worker_process(
    database_url: str, twitter: FakeTwitter, strategy: str, count: int
) -> ManagedProcess:
    """The stage's worker command with `count` processes, not started yet.

    It counts as ready once every worker has connected to the database.
    """
    process = ManagedProcess(
        f"db-queue-{strategy}-{count}",
        [sys.executable, "-m", "twitpic.worker", "--strategy", strategy, "--workers", str(count),
         "--poll", str(WORKER_POLL_SECONDS)],
        cwd=STAGE_DIR,
        env={
            "TWITPIC_DATABASE_URL": database_url,
            "TWITTER_API_URL": twitter.api_url,  # leases and timeouts as the stage sets them
        },
        ready=lambda: workers_connected(process.pid, count, database_url),
    )
    return process


def workers_connected(supervisor_pid: int, count: int, database_url: str) -> bool:
    """Has each of the supervisor's `count` worker processes opened its database connection?

    A worker connects, then goes straight into its loop of polling the table.
    """
    try:
        workers = psutil.Process(supervisor_pid).children()
        if len(workers) < count:
            return False
        return all(holds_database(worker, database_url) for worker in workers)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def holds_database(process: psutil.Process, database_url: str) -> bool:
    if database_url.startswith("sqlite:///"):
        path = os.path.realpath(database_url.removeprefix("sqlite:///"))
        return any(os.path.realpath(file.path) == path for file in process.open_files())
    return connects_to(process.pid, urlparse(database_url).port or DEFAULT_PORTS[database_url.split(":", 1)[0]])


# -- one run ------------------------------------------------------------------------------------


def claim_lock_ms(helper: StageHelper, scratch_dir: Path, backend: str) -> float:
    """How long one claim holds the global lock, with nobody waiting for it, in milliseconds."""
    with private_database(backend, scratch_dir, prefix="twitpic_bench") as url:
        helper.init_db(url)
        return round(helper.lock_held_ms(url, HOLD_CLAIMS), 2)


def run_once(
    helper: StageHelper, twitter: FakeTwitter, scratch_dir: Path, backend: str, strategy: str,
    workers: int, jobs: int, latency_ms: int,
) -> dict:
    """`workers` processes drain `jobs` jobs; one result row."""
    run_id = uuid.uuid4().hex[:8]
    texts = [f"bench {run_id} job {number:05d}" for number in range(jobs)]  # each text unique
    # Generous: even one worker at a time, with room for a slow machine.
    timeout = 30 + jobs * (latency_ms / 1000 + 0.05) * 2
    with private_database(backend, scratch_dir, prefix="twitpic_bench") as database_url:
        helper.init_db(database_url)
        process = worker_process(database_url, twitter, strategy, workers)
        try:
            process.start(timeout=30)
            time.sleep(SETTLE_SECONDS)
            twitter.reset()
            drained = helper.request({"url": database_url, "texts": texts, "timeout": timeout})
            if strategy in UNSAFE_STRATEGIES:
                # A naive worker may still be posting a job another worker already finished.
                time.sleep(2 * latency_ms / 1000 + 0.1)
        finally:
            process.stop()
            process.remove_log()
    posted = {text: 0 for text in texts}
    for tweet in twitter.ledger():
        if tweet["text"] in posted:
            posted[tweet["text"]] += 1
    finished = jobs - drained["unfinished"]
    return {
        "backend": backend,
        "strategy": strategy,
        "workers": workers,
        "jobs_per_s": round(finished / drained["seconds"], 1),
        "duplicates": sum(count - 1 for count in posted.values() if count > 1),
        "lost": sum(1 for count in posted.values() if count == 0),
        "unfinished": drained["unfinished"],  # not done when the run timed out; reported, not saved
    }


def settings_line(jobs: int, latency_ms: int, workers: tuple[int, ...], quick: bool) -> str:
    counts = ", ".join(str(count) for count in workers)
    line = (f"{jobs} jobs per run, fake Twitter latency {latency_ms} ms, {counts} workers,"
            f" {os.cpu_count()} CPUs")
    if quick:
        line += f" (quick run: a full run has {FULL_JOBS} jobs and 1, 2, 4, 8 workers)"
    return line


# -- the command --------------------------------------------------------------------------------


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbook bench db-queue",
        description="Stage 02's claim strategies draining the jobs table with 1 to 8 workers.",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help=f"{QUICK_JOBS} jobs per run and 1 and 4 workers only (under a minute)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench-results"),
        help="folder for db-queue.json and db-queue.md (default bench-results)",
    )
    parser.add_argument(
        "--jobs", type=int, help=f"jobs per run (default {FULL_JOBS}, quick {QUICK_JOBS})"
    )
    parser.add_argument("--workers", help="worker counts, e.g. 1,2,4,8 (the default; quick 1,4)")
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="default: sqlite,postgresql,mariadb"
    )
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="default: all five")
    parser.add_argument(
        "--latency-ms", type=int, default=DEFAULT_LATENCY_MS,
        help=f"the fake Twitter's fixed latency per tweet (default {DEFAULT_LATENCY_MS})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    jobs = args.jobs or (QUICK_JOBS if args.quick else FULL_JOBS)
    workers = QUICK_WORKERS if args.quick else FULL_WORKERS
    if args.workers:
        try:
            workers = tuple(int(count) for count in comma_list(args.workers))
        except ValueError:
            parser.error(f"--workers takes numbers separated by commas, not {args.workers!r}")
    backends, strategies = comma_list(args.backends), comma_list(args.strategies)
    for name, chosen, known in (
        ("backend", backends, BACKENDS), ("strategy", strategies, STRATEGIES)
    ):
        for value in chosen:
            if value not in known:
                parser.error(f"unknown {name} {value!r}: one of {', '.join(known)}")
    if jobs < 1 or not workers or min(workers) < 1 or args.latency_ms < 0:
        parser.error("--jobs and --workers must be at least 1, --latency-ms at least 0")

    if "postgresql" not in backends:
        return run(args, jobs, workers, backends, strategies)
    postgresql_dir = Path(tempfile.mkdtemp(prefix="db-queue-postgresql-"))
    try:
        with embedded_postgresql(postgresql_dir) as version:
            if version:
                print(f"postgresql: the embedded server, PostgreSQL {version}", flush=True)
            return run(args, jobs, workers, backends, strategies)
    finally:
        shutil.rmtree(postgresql_dir, ignore_errors=True)


def run(args, jobs: int, workers: tuple[int, ...], backends: list[str], strategies: list[str]) -> int:
    settings = settings_line(jobs, args.latency_ms, workers, args.quick)
    print(settings, flush=True)
    skipped = {}
    for backend in backends:
        reason = unreachable_reason(backend)
        if reason:
            skipped[backend] = reason
            print(f"{backend}: skipped, {reason}", flush=True)
    plan = [
        (backend, strategy, count)
        for backend in backends if backend not in skipped
        for strategy in strategies if (backend, strategy) not in UNSUPPORTED
        for count in workers
    ]

    rows: list[dict] = []
    held: dict[str, float] = {}  # backend -> ms the claim lock is held per claim
    started = time.monotonic()
    scratch_dir = Path(tempfile.mkdtemp(prefix="db-queue-bench-"))
    twitter = helper = None
    try:
        twitter = FakeTwitter.start(latency_ms=(args.latency_ms, args.latency_ms), time_scale=1.0)
        helper = StageHelper()
        for backend in (b for b in backends if b not in skipped and "locked-claim" in strategies):
            held[backend] = claim_lock_ms(helper, scratch_dir, backend)
        for backend, strategy, count in plan:
            row = run_once(
                helper, twitter, scratch_dir, backend, strategy, count, jobs, args.latency_ms
            )
            rows.append(row)
            print(f"  {backend} {strategy} x{count}: {row['jobs_per_s']:.1f} jobs/s,"
                  f" {row['duplicates']} duplicates, {row['lost']} lost", flush=True)
    except KeyboardInterrupt:
        print("interrupted: nothing written")
        return 130
    finally:
        if helper is not None:
            helper.close()
        if twitter is not None:
            twitter.stop()
        shutil.rmtree(scratch_dir, ignore_errors=True)

    print()
    print(text_table(rows))
    verdict = postgresql_verdict(rows)
    if verdict:
        print(verdict)
    for line in lock_ceilings(held, args.latency_ms):
        print(line)
    print(f"{len(rows)} runs in {time.monotonic() - started:.0f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "db-queue.json").write_text(
        json.dumps({"rows": [{key: row[key] for key in ROW_KEYS} for row in rows], "claim_lock_ms": held},
                   indent=2) + "\n")
    write_markdown(args.out / "db-queue.md", rows, settings, skipped, lock_ceilings(held, args.latency_ms))
    print(f"wrote {args.out / 'db-queue.json'} and {args.out / 'db-queue.md'}")

    problems = [problem for row in rows for problem in row_problems(row)]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


def row_problems(row: dict) -> list[str]:
    """What went wrong in a run: unfinished or lost jobs, or duplicates from a safe strategy."""
    run = f"{row['backend']} {row['strategy']} x{row['workers']}"
    problems = []
    if row["unfinished"]:
        problems.append(f"{run}: {row['unfinished']} jobs were not done when the run timed out")
    if row["lost"]:
        problems.append(f"{run}: {row['lost']} jobs were never posted")
    if row["duplicates"] and row["strategy"] not in UNSAFE_STRATEGIES:
        problems.append(
            f"{run}: {row['duplicates']} duplicates from a strategy that should have none"
        )
    return problems


if __name__ == "__main__":
    raise SystemExit(main())
