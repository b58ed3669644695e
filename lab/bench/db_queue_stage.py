"""The stage's side of `workbook bench db-queue`: a long-lived helper process in stage 02's
folder that runs the stage's own database code (create the tables, time the claim lock, add jobs
and count them done), so the lab never imports the stage's `twitpic` package itself.
"""

from __future__ import annotations

import json
import subprocess
import sys

from lab.runtime.stages import STEPS_DIR

STAGE_DIR = STEPS_DIR / "02-db-queue"
DONE_POLL_SECONDS = 0.005  # how often the helper counts unfinished jobs while the clock runs

# Runs in the stage's folder with the stage's own code. Each line on stdin is a request:
# {"init": U} creates the tables in the database at U, as the stage's release does;
# {"hold": U, "claims": N} times N claims under the global lock, one worker, nobody waiting;
# {"url": U, "texts": [...], "timeout": S} inserts one job per text in a single transaction, then
# counts unfinished jobs until there are none. The clock starts at the commit. One JSON reply per
# line on stdout.
STAGE_HELPER = """
import json, sys, time, traceback
from twitpic import claims
from twitpic.db import Database, init_db
from twitpic.jobs import enqueue_tweet

UNFINISHED = "SELECT COUNT(*) AS n FROM tweet_jobs WHERE status <> 'done'"

def drain(url, texts, timeout):
    db = Database(url)
    try:
        with db.transaction():
            for text in texts:
                enqueue_tweet(db, "bob", text)
            started = time.monotonic()  # the transaction commits as this block ends
        deadline = started + timeout
        unfinished = db.one(UNFINISHED)["n"]
        while unfinished and time.monotonic() < deadline:
            time.sleep(%(poll)r)
            unfinished = db.one(UNFINISHED)["n"]
        return {"seconds": time.monotonic() - started, "unfinished": unfinished}
    finally:
        db.close()

def hold(url, count):
    db = Database(url)
    try:
        with db.transaction():
            for number in range(count):
                enqueue_tweet(db, "bob", f"hold {number}")
        started = time.monotonic()
        for _ in range(count):
            with claims.global_lock(db):
                claims.claim_under_lock(db, time.time(), 30.0)
        return {"ms": (time.monotonic() - started) / count * 1000}
    finally:
        db.close()

for line in sys.stdin:
    request = json.loads(line)
    try:
        if "init" in request:
            init_db(request["init"])
            reply = {}
        elif "hold" in request:
            reply = hold(request["hold"], request["claims"])
        else:
            reply = drain(request["url"], request["texts"], request["timeout"])
    except Exception:
        reply = {"error": traceback.format_exc()}
    print(json.dumps(reply), flush=True)
""" % {"poll": DONE_POLL_SECONDS}


class BenchError(RuntimeError):
    pass


# -- the stage's side ---------------------------------------------------------------------------


class StageHelper:
    """A long-lived Python process in the stage's folder that runs the stage's database code."""

    def __init__(self) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-c", STAGE_HELPER],
            cwd=STAGE_DIR,  # `python -c` imports from the current folder: the stage's twitpic
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the bench, which then closes it
        )

    def init_db(self, url: str) -> None:
        self.request({"init": url})

    def lock_held_ms(self, url: str, claims: int) -> float:
        return self.request({"hold": url, "claims": claims})["ms"]

    def request(self, request: dict) -> dict:
        self.popen.stdin.write(json.dumps(request) + "\n")
        self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        if not line:
            raise BenchError(f"the stage helper exited with code {self.popen.wait()}")
        reply = json.loads(line)
        if "error" in reply:
            raise BenchError(f"the stage helper failed:\n{reply['error']}")
        return reply

    def close(self) -> None:
        try:
            self.popen.stdin.close()  # end of input: the helper's loop ends
            self.popen.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.popen.kill()
            self.popen.wait()
        self.popen.stdout.close()
