"""The app's and the job workers' settings, from the environment (what the Procfile and the tests set).

Every duration is in plain seconds.
"""

import math
import os
from pathlib import Path

from .dialects import longest_wait

STAGE_DIR = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    pass


def seconds(name: str, default: float, zero: bool = False) -> float:
    """A duration from the environment; 0 only where `zero` says that it means something."""
    text = os.environ.get(name, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {text!r}") from None
    if not (0 <= value if zero else 0 < value) or value == math.inf:
        least = "0 or a positive" if zero else "a positive"
        raise SettingsError(f"{name} must be {least} number of seconds, got {text!r}")
    return value


def addresses(name: str) -> list[tuple[str, int]]:
    """`host:port,host:port...` from the environment, as (host, port) pairs; none if it is unset."""
    found = []
    for item in filter(None, (part.strip() for part in os.environ.get(name, "").split(","))):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise SettingsError(f"{name} must be host:port,host:port..., got {item!r}")
        found.append((host, int(port)))
    return found


def settings_from_environment() -> dict:
    data_dir = Path(os.environ.get("TWITPIC_DATA_DIR", STAGE_DIR / "data")).resolve()
    max_photo = int(os.environ.get("TWITPIC_MAX_PHOTO_BYTES", 5 * 1024 * 1024))
    settings = {
        # SQLite in the data folder unless a postgresql:// or mysql:// URL says otherwise.
        "DATABASE_URL": os.environ.get("TWITPIC_DATABASE_URL") or f"sqlite:///{data_dir / 'twitpic.sqlite3'}",
        "PHOTO_DIR": str(data_dir / "photos"),
        "MAX_PHOTO_BYTES": max_photo,
        # Room for the form's other fields; a larger body is refused before it is read.
        "MAX_CONTENT_LENGTH": max_photo + 64 * 1024,
        "TWITTER_API_URL": os.environ.get("TWITTER_API_URL", "http://127.0.0.1:8081").rstrip("/"),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6380/0"),
        # Redis with Sentinel: the Sentinels to ask which server is the primary, and the name they
        # know it by. When they are set, REDIS_URL is not used.
        "REDIS_SENTINELS": addresses("TWITPIC_REDIS_SENTINELS"),
        "REDIS_SENTINEL_MASTER": os.environ.get("TWITPIC_REDIS_SENTINEL_MASTER", "twitpic"),
        # With Sentinels: how long a job worker keeps trying to reach the primary when it cannot,
        # before it exits. Longer than a failover with Sentinel's default timings (a primary is
        # down after 30 s of silence, then a replica is promoted); 0: exit at once.
        "REDIS_FAILOVER_WAIT": seconds("TWITPIC_REDIS_FAILOVER_WAIT", 60, zero=True),
        # Only signs the cookie that remembers which demo user you picked; there are no passwords.
        "SECRET_KEY": os.environ.get("TWITPIC_SECRET_KEY", "demo-only-not-a-secret"),
        # The longest each thing a request or a job waits on may take.
        "DATABASE_TIMEOUT": seconds("TWITPIC_DATABASE_TIMEOUT", 3),  # a lock, a statement, connecting
        "REDIS_TIMEOUT": seconds("TWITPIC_REDIS_TIMEOUT", 1),  # connecting, and each answer
        "TWITTER_CONNECT_TIMEOUT": seconds("TWITPIC_TWITTER_CONNECT_TIMEOUT", 3),
        "TWITTER_READ_TIMEOUT": seconds("TWITPIC_TWITTER_READ_TIMEOUT", 10),  # a hung Twitter gives up here
        # The circuit breaker: this many failures within the window open it for the cool-down.
        "BREAKER_THRESHOLD": int(os.environ.get("TWITPIC_BREAKER_THRESHOLD", 5)),
        "BREAKER_WINDOW": seconds("TWITPIC_BREAKER_WINDOW", 60),
        "BREAKER_COOLDOWN": seconds("TWITPIC_BREAKER_COOLDOWN", 20),
        # Retries: the first about this long after a failure, each next one twice as long, up to the cap.
        "RETRY_FIRST": seconds("TWITPIC_RETRY_FIRST", 1),
        "RETRY_CAP": seconds("TWITPIC_RETRY_CAP", 60),
        # The relay: how often it looks for new outbox rows, and how often it checks that Redis
        # still has the jobs it queued.
        "RELAY_POLL": seconds("TWITPIC_RELAY_POLL", 0.1),
        "RELAY_CHECK_INTERVAL": seconds("TWITPIC_RELAY_CHECK_INTERVAL", 2),
    }
    settings["JOB_TIMEOUT"] = job_timeout(settings, os.environ.get("TWITPIC_JOB_TIMEOUT"))
    return settings


# --8<-- [start:budget]
# The tweet job's waits at most (tasks.py; tests/test_settings.py counts them): connecting to the
# database and four statements; connecting to Redis and six commands (the rate limit, the
# breaker's check and record).
JOB_DATABASE_WAITS = 5
JOB_REDIS_WAITS = 7
# RQ declares a job abandoned 60 s after its last heartbeat, at the earliest. A work horse ends
# itself at its job timeout, so a timeout within that grace means a job is never run again while
# its first run could still be going.
RQ_ABANDONED_AFTER = 60


def attempt_budget(settings: dict) -> dict[str, float]:
    """Everything one run of the tweet job may wait on, at worst, in seconds."""
    database_wait = longest_wait(settings["DATABASE_URL"], settings["DATABASE_TIMEOUT"])
    return {
        "database": JOB_DATABASE_WAITS * database_wait,
        "redis": JOB_REDIS_WAITS * settings["REDIS_TIMEOUT"],
        "twitter": settings["TWITTER_CONNECT_TIMEOUT"] + settings["TWITTER_READ_TIMEOUT"],
    }


def job_timeout(settings: dict, chosen: str | None = None) -> int:
    """RQ's time limit for one run of the job, in whole seconds (RQ's unit): longer than all the
    run may wait on, so that a slow run ends by its own timeouts, as a failure the job handles,
    and not by RQ killing it half-way. A second more for the fork, the imports, RQ's bookkeeping."""
    waits = sum(attempt_budget(settings).values())
    timeout = int(chosen) if chosen else math.ceil(waits) + 1
    if timeout <= waits:
        raise SettingsError(f"a job timeout of {timeout} s is no longer than the {waits:g} s one run may wait")
    if timeout > RQ_ABANDONED_AFTER:
        raise SettingsError(
            f"a job timeout of {timeout} s is over {RQ_ABANDONED_AFTER} s: RQ could run the job again while "
            "its first run still goes on; shorten the waits"
        )
    return timeout
# --8<-- [end:budget]
