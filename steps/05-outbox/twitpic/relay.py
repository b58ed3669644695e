"""The relay: `python -m twitpic.relay`, the Procfile's `relay`. It queues the outbox's new rows
as RQ jobs, checks now and then that Redis still has the jobs of the rows it sent, and forgets the
rows whose tweets are posted.

It outlives Redis and the database going away: it says so, waits a poll, and tries again. A
tweet saved meanwhile waits in the outbox, in the database, until it can be queued.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time

from .db import Database
from .outbox import BATCH, check_sent, forget_posted, send_new
from .queue import connect, tweets_queue, what_could_lose_jobs
from .settings import settings_from_environment

log = logging.getLogger("twitpic.relay")


# --8<-- [start:loop]
def relay(settings: dict, stop: threading.Event) -> None:
    """Until `stop` is set: queue new rows as soon as they are seen (every RELAY_POLL seconds),
    and check the sent ones every RELAY_CHECK_INTERVAL seconds."""
    queue = tweets_queue(connect(settings))
    db = None
    checked_at, check_from = 0.0, ""
    while not stop.is_set():
        try:
            if db is None:
                db = Database(settings["DATABASE_URL"], settings["DATABASE_TIMEOUT"])
            sent = send_new(db, queue, settings)
            if time.monotonic() - checked_at >= settings["RELAY_CHECK_INTERVAL"]:
                forget_posted(db)
                lost, check_from = check_sent(db, queue, after=check_from)
                checked_at = time.monotonic()
                sent += lost
        except Exception as error:  # Redis or the database unreachable: the rows wait, in the outbox
            log.warning("cannot relay now (%s: %s); trying again", error.__class__.__name__, error)
            if db is not None:
                db.close()
                db = None
            sent = 0
        if sent < BATCH:  # a full batch means more are waiting: no pause
            stop.wait(settings["RELAY_POLL"])
    if db is not None:
        db.close()
# --8<-- [end:loop]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s relay %(message)s")
    settings = settings_from_environment()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())  # finish the batch in hand, then leave
    try:
        for problem in what_could_lose_jobs(connect(settings)):
            log.warning("this Redis could lose queued tweets: %s (the relay queues them again)", problem)
    except Exception as error:
        log.warning("cannot read Redis's settings yet: %s", error)
    sentinels = ", ".join(f"{host}:{port}" for host, port in settings["REDIS_SENTINELS"])
    log.info("relaying the outbox to %s", f"the primary named by the Sentinels {sentinels}" if sentinels
             else settings["REDIS_URL"])
    relay(settings, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
