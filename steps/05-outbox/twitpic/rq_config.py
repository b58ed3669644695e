"""Settings for the stage's RQ job workers: `rq worker -c twitpic.rq_config` (RQ's "Using a
Config File"). The command line's options come on top.

Importing this module also imports the job's, so that each job worker imports it once, before it
forks a work horse per job, and not every work horse once more (RQ's "Performance Notes").
"""

from . import tasks  # noqa: F401  (the job, imported before the fork)
from .settings import settings_from_environment

REDIS_URL = settings_from_environment()["REDIS_URL"]
QUEUES = ["tweets"]
