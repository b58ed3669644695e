"""`workbook bench rq-enqueue [--quick] [--out DIR]`: what Redis's append-only file costs an enqueue.

Stage 04's web request enqueues one RQ job per tweet, and waits for Redis's answer. Three private
Redis servers, side by side, differ only in when the append-only file reaches the disk:

- `off`: no file at all (a restart loses every queued job);
- `everysec`: written in Redis's next turn, synced to disk once a second (stage 04's choice: a
  killed Redis loses what it held back while a slow sync ran, up to two seconds, usually
  nothing; a power cut up to two seconds);
- `always`: synced to disk before Redis answers.

Each round enqueues the same number of jobs into each, one after another, as stage 04's
`enqueue_tweet` does (a unique job id, a Retry, a time limit, JSON), from a few client threads,
like web workers. The rounds alternate the order, and the table gives each server's median over
the rounds and its ratio to `off`, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
from rq import Queue, Retry

from lab.bench.figures import write_results
from lab.runtime.redis_server import RedisServer, server_name

SETTINGS = ("off", "everysec", "always")
JOB = "twitpic.tasks.post_tweet_job"  # stage 04's job, by name: the bench only enqueues it


def enqueue_round(url: str, jobs: int, clients: int) -> float:
    """Enqueue `jobs` jobs from `clients` threads; jobs per second."""
    connection = redis.Redis.from_url(url, max_connections=clients)
    queue = Queue("tweets", connection=connection, serializer="json")
    batch = uuid.uuid4().hex[:8]

    def enqueue(n: int) -> None:
        queue.enqueue(JOB, f"comment-{batch}-{n}", "bob", f"tweet {n} https://twitpic.example/p",
                      job_id=f"tweet-comment-{batch}-{n}", unique=True, retry=Retry(max=2, interval=[1, 2]),
                      job_timeout=36, failure_ttl=7 * 24 * 3600)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(enqueue, range(jobs)))
    elapsed = time.perf_counter() - started
    assert queue.count >= jobs, "every job is queued"
    queue.empty()
    connection.close()
    return jobs / elapsed


def run(jobs: int, rounds: int, clients: int) -> list[dict]:
    scratch = Path(tempfile.mkdtemp(prefix="rq-enqueue-bench-"))
    servers = {name: RedisServer(scratch / name, appendfsync=name).start() for name in SETTINGS}
    rates: dict[str, list[float]] = {name: [] for name in SETTINGS}
    try:
        for name in SETTINGS:  # a round to warm up each (imports, connections, the file's first writes)
            enqueue_round(servers[name].url, max(20, jobs // 10), clients)
        for number in range(rounds):
            order = SETTINGS if number % 2 == 0 else tuple(reversed(SETTINGS))
            for name in order:
                rates[name].append(enqueue_round(servers[name].url, jobs, clients))
    finally:
        for server in servers.values():
            server.stop()
    base = statistics.median(rates["off"])
    return [{"appendfsync": name, "jobs_per_s": round(statistics.median(rates[name])),
             "ratio_to_off": round(statistics.median(rates[name]) / base, 2),
             "rounds": [round(rate) for rate in rates[name]]} for name in SETTINGS]


def format_table(rows: list[dict], jobs: int, rounds: int, clients: int) -> str:
    lines = [f"rq-enqueue: {jobs} jobs per round from {clients} clients, {rounds} rounds, median per server "
             f"({server_name()})"]
    for row in rows:
        lines.append(f"appendfsync {row['appendfsync']:<9} {row['jobs_per_s']:>6} jobs/s  "
                     f"{row['ratio_to_off']:.2f}x of off  (rounds: {', '.join(map(str, row['rounds']))})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbook bench rq-enqueue", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 jobs and 3 rounds (default 2,000 and 5)")
    parser.add_argument("--clients", type=int, default=4, help="client threads, like web workers (default 4)")
    parser.add_argument("--out", type=Path, default=None, help="also write DIR/rq-enqueue.json and .txt")
    args = parser.parse_args(argv)
    jobs, rounds = (200, 3) if args.quick else (2000, 5)
    rows = run(jobs, rounds, args.clients)
    table = format_table(rows, jobs, rounds, args.clients)
    print(table)
    if args.out:
        write_results(args.out, "rq-enqueue", rows, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
