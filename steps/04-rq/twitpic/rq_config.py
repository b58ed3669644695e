"""Settings for the stage's RQ job workers: `rq worker -c twitpic.rq_config` (RQ's "Using a
Config File"). The command line's options come on top.

Importing this module also imports the job's, and the driver of the site's database, so that
each job worker imports them once, before it forks a work horse per job, and not every work horse
once more (RQ's "Performance Notes").
"""

import math

from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from . import tasks  # noqa: F401  (the job, imported before the fork)
from .dialects import import_driver
from .queue import SentinelConnection
from .settings import settings_from_environment

settings = settings_from_environment()
import_driver(settings["DATABASE_URL"])  # psycopg takes a quarter of a second: not once per job
QUEUES = ["tweets"]
# --8<-- [start:sentinel]
if settings["REDIS_SENTINELS"]:
    # RQ's Sentinel support: the job worker asks the Sentinels for the primary when it connects.
    # RQ lengthens the socket's timeout itself, past the wait for the next job.
    SENTINEL = {
        "INSTANCES": settings["REDIS_SENTINELS"],
        "MASTER_NAME": settings["REDIS_SENTINEL_MASTER"],
        "SOCKET_TIMEOUT": settings["REDIS_TIMEOUT"],
        "CONNECTION_KWARGS": {
            "connection_class": SentinelConnection,  # two of redis-py 8.1's faults mended (queue.py)
            "socket_connect_timeout": settings["REDIS_TIMEOUT"],
            # A lost primary is asked for again, about a second apart, for about REDIS_FAILOVER_WAIT
            # seconds: a failover then ends no job worker. redis-py's Retry, on connection errors
            # and timeouts only; each try asks the Sentinels for the primary afresh (queue.py).
            "retry": Retry(ExponentialBackoff(cap=1, base=0.1), math.ceil(settings["REDIS_FAILOVER_WAIT"])),
        },
        "SENTINEL_KWARGS": {
            "socket_timeout": settings["REDIS_TIMEOUT"], "socket_connect_timeout": settings["REDIS_TIMEOUT"],
        },
    }
else:
    REDIS_URL = settings["REDIS_URL"]
# --8<-- [end:sentinel]
