"""`workbook bench outbox [--quick] [--out DIR]`: what the outbox costs, stage 04 against stage 05.

Two figures, each from the real stages started from their Procfiles, with a fake Twitter that
answers at once:

- **Comment to tweet.** Comments are posted one after another, a little apart, and each is timed
  from the moment it is sent to the fake Twitter receiving its tweet. It is not timed from the
  site's answer: in stage 04 a job worker can post the tweet before the 303 reaches the browser.
  Stage 04 queues the tweet in the web request; stage 05 saves it in the outbox, and its relay
  queues it at its next poll.
  The rounds alternate which stage goes first; the table gives each stage's median and 99th
  percentile over every comment of every round.
- **One relay's throughput.** In stage 05, with the job workers suspended (`rq suspend`), a batch
  of rows is written into the outbox in one transaction, and the clock runs until the relay has
  queued them all: rows per second, the median over the rounds.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from lab.bench.figures import percentile, write_results
from lab.drill.probes import counter
from lab.runtime.process import wait_until
from lab.testing.stages import running_stage
from lab.twitter import FakeTwitter

STAGES = ("04-rq", "05-outbox")
GAP_SECONDS = 0.05  # between two comments: one at a time, the way people comment
RQ = str(Path(sys.executable).with_name("rq"))  # RQ's own command, from this environment


def delays(stage: str, comments: int, twitter: FakeTwitter, folder: Path) -> list[float]:
    """Seconds from each comment being sent to its tweet on the fake Twitter."""
    twitter.reset()
    with running_stage(stage, twitter, folder / stage / "data") as (site, _env, _processes):
        photo = site.new_photo()
        sent: dict[str, float] = {}
        for number in range(comments):
            body = f"bench {stage} {number}"
            sent[body] = time.time()  # the fake Twitter's clock is this machine's
            response = site.comment(photo, body)
            assert response.status_code == 303, response.status_code
            time.sleep(GAP_SECONDS)
        wait_until(lambda: len(twitter.ledger()) >= comments, timeout=60, what=f"{stage}'s tweets posted")
        received = {tweet["text"].rsplit(" ", 1)[0]: tweet["received_at"] for tweet in twitter.ledger()}
    return [datetime.fromisoformat(received[body]).timestamp() - at for body, at in sent.items()]


def relay_rate(rows: int, twitter: FakeTwitter, folder: Path) -> float:
    """Rows per second one relay queues, from an outbox holding `rows` unsent rows."""
    twitter.reset()
    with running_stage("05-outbox", twitter, folder / "relay" / "data") as (_site, env, _processes):
        subprocess.run([RQ, "suspend", "--url", env["REDIS_URL"]], check=True, capture_output=True, timeout=30)
        database = Path(env["TWITPIC_DATA_DIR"]) / "twitpic.sqlite3"
        with sqlite3.connect(database, timeout=10) as db:  # what many web requests would have written
            db.executemany(
                "INSERT INTO outbox (tweet_id, username, text, created_at) VALUES (?, 'bob', ?, ?)",
                [(f"comment-{n}", f"bench {n} https://twitpic.example/p", time.time()) for n in range(rows)],
            )
        started = time.monotonic()  # the rows are committed as the block ends
        unsent = counter(database, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
        wait_until(lambda: unsent() == 0, timeout=120, interval=0.01, what="the outbox queued")
        return rows / (time.monotonic() - started)


def run(comments: int, rows: int, rounds: int) -> dict:
    found: dict = {"comments": comments, "rows": rows, "rounds": rounds, "delays": {s: [] for s in STAGES},
                   "relay_rows_per_second": []}
    twitter = FakeTwitter.start(latency_ms=(0, 0), time_scale=1.0)
    try:
        with tempfile.TemporaryDirectory(prefix="workbook-bench-outbox-") as scratch:
            for number in range(rounds):
                order = STAGES if number % 2 == 0 else tuple(reversed(STAGES))
                folder = Path(scratch) / f"round-{number}"
                for stage in order:
                    found["delays"][stage] += delays(stage, comments, twitter, folder)
                found["relay_rows_per_second"].append(relay_rate(rows, twitter, folder))
    finally:
        twitter.stop()
    return found


def format_table(found: dict) -> str:
    lines = [
        f"Comment to tweet: {found['comments']} comments per stage and round, {found['rounds']} rounds, "
        "a fake Twitter that answers at once",
        f"{'stage':<10} {'p50 (ms)':>9} {'p99 (ms)':>9}",
    ]
    for stage in STAGES:
        values = found["delays"][stage]
        lines.append(f"{stage:<10} {percentile(values, 0.5) * 1000:9.0f} {percentile(values, 0.99) * 1000:9.0f}")
    rates = found["relay_rows_per_second"]
    lines += [
        "",
        f"One relay: {found['rows']} outbox rows queued, {found['rounds']} rounds",
        f"rows per second: median {statistics.median(rates):,.0f}"
        f" (rounds: {', '.join(f'{rate:,.0f}' for rate in rates)})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbook bench outbox", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="20 comments, 500 rows, 2 rounds (default 100, 5,000, 3)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write DIR/outbox.json and .txt")
    args = parser.parse_args(argv)
    comments, rows, rounds = (20, 500, 2) if args.quick else (100, 5000, 3)
    found = run(comments, rows, rounds)
    table = format_table(found)
    print(table)
    if args.out:
        write_results(args.out, "outbox", found, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
