"""Settings for the stage's RQ job workers: `rq worker -c twitpic.rq_config` (RQ's "Using a
Config File"). The command line's options come on top.

Importing this module also imports the job's, so that each job worker imports it once, before it
forks a work horse per job, and not every work horse once more (RQ's "Performance Notes").
"""

from . import tasks  # noqa: F401  (the job, imported before the fork)
from .settings import settings_from_environment

settings = settings_from_environment()
QUEUES = ["tweets"]
if settings["REDIS_SENTINELS"]:
    # RQ's Sentinel support: the job worker asks the Sentinels for the primary when it connects.
    # RQ lengthens the socket's timeout itself, past the wait for the next job.
    SENTINEL = {
        "INSTANCES": settings["REDIS_SENTINELS"],
        "MASTER_NAME": settings["REDIS_SENTINEL_MASTER"],
        "SOCKET_TIMEOUT": settings["REDIS_TIMEOUT"],
        "CONNECTION_KWARGS": {"socket_connect_timeout": settings["REDIS_TIMEOUT"]},
        "SENTINEL_KWARGS": {
            "socket_timeout": settings["REDIS_TIMEOUT"], "socket_connect_timeout": settings["REDIS_TIMEOUT"],
        },
    }
else:
    REDIS_URL = settings["REDIS_URL"]
