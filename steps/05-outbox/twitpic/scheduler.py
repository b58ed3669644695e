"""RQ's scheduler in a process of its own: `python -m twitpic.scheduler`, the Procfile's `scheduler`.

The scheduler puts jobs waiting to be tried again back on the queue when they are due. RQ runs it
with `rq worker --with-scheduler`, forked from a job worker, and there it has a flaw that bites
this stage: the fork keeps a copy of the job worker's connection to Redis, the one on which the
job worker waits for its next job. Kill that job worker and Redis still sees the connection open:
it hands the next job to a reader that is gone, where the job stays until a maintenance pass finds
it, a minute or more later. Here the same scheduler runs with no job worker's connections.

It says at start whether the Redis it is given would lose queued jobs, and it outlives a Redis
restart: it waits for Redis to answer again, then goes on.
"""

import logging
import os
import socket
import sys
import time

import redis
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from .queue import TWEETS, connect, what_could_lose_jobs
from .settings import settings_from_environment

log = logging.getLogger("twitpic.scheduler")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s scheduler %(message)s")
    connection = connect(settings_from_environment())
    # Named after this process, so that after a Redis restart it takes its own lock back at once.
    name = f"{socket.gethostname()}:{os.getpid()}"
    scheduler = RQScheduler([TWEETS], connection=connection, serializer=JSONSerializer, name=name)
    checked = False
    while True:
        try:
            if not checked:
                for problem in what_could_lose_jobs(connection):
                    log.warning("this Redis could lose queued tweets: %s", problem)
                checked = True
            scheduler.work()  # until SIGTERM or Ctrl-C
            return 0
        except (redis.ConnectionError, redis.TimeoutError) as error:
            log.warning("Redis does not answer (%s); trying again in a second", error)
            time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
