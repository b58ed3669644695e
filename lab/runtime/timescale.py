"""One knob that scales every delay in the lab and the stages.

The case study's Twitter took 1-2 s per call. A demo shows exactly that (scale 1); the tests run the
same code at a hundredth of the time (scale 0.01). Every latency, timeout and poll interval written
in "story time" is multiplied by it, so the whole story speeds up or slows down together.
"""

import os

ENV_VAR = "WORKBOOK_TIME_SCALE"


class TimeScaleError(ValueError):
    pass


def parse_time_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TimeScaleError(f"time scale must be a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise TimeScaleError(f"time scale must be a positive finite number, got {text!r}")
    return value


def time_scale() -> float:
    """The current scale, read from the environment every time so child processes inherit it."""
    text = os.environ.get(ENV_VAR, "").strip()
    return parse_time_scale(text) if text else 1.0


def set_time_scale(value: float) -> None:
    """Set the scale for this process and every process it starts from now on."""
    os.environ[ENV_VAR] = repr(parse_time_scale(str(value)))


def whole_seconds(seconds: float, scale: float) -> int:
    """Story-time seconds at `scale`, for a setting that counts whole seconds (gunicorn's timeout,
    RQ's job timeout): rounded, and never 0, which would mean "no limit" to both."""
    return max(1, round(seconds * scale))


# The stages' durations that belong to the story, in story seconds, as the stages' settings
# default them: how long Twitter may take to answer, how long the breaker counts failures and
# cools down, how soon a failed tweet is tried again. The lab passes them on scaled, through the
# stages' own settings: a stage has no time scale of its own. (How long the database or Redis may
# take belongs to the machine, not the story, and is left alone.)
STORY_SECONDS = {
    "TWITPIC_TWITTER_CONNECT_TIMEOUT": 3.0,
    "TWITPIC_TWITTER_READ_TIMEOUT": 10.0,
    "TWITPIC_BREAKER_WINDOW": 60.0,
    "TWITPIC_BREAKER_COOLDOWN": 20.0,
    "TWITPIC_RETRY_FIRST": 1.0,
    "TWITPIC_RETRY_CAP": 60.0,
    # Stages 02 and 03's job workers: one timeout for Twitter, the lease, and how often an idle one looks.
    "TWITPIC_TWITTER_TIMEOUT": 10.0,
    "TWITPIC_LEASE": 30.0,
    "TWITPIC_POLL": 0.5,
    "TWITPIC_QUEUE_WAIT": 1.0,
}
# RQ's own settings, which stage 04's Procfile passes to `rq worker`: whole seconds.
STORY_WHOLE_SECONDS = {
    "RQ_JOB_MONITORING_INTERVAL": 30,  # how often a busy job worker renews its job's heartbeat
    "RQ_MAINTENANCE_INTERVAL": 60,  # how often a job worker cleans the registries up...
    "RQ_WORKER_TTL": 75,  # ...if it is awake: an idle one waits for a job this long less 15 s
}


def story_settings(scale: float) -> dict[str, str]:
    """The story's durations at `scale`, as environment variables for a stage's processes."""
    settings = {name: repr(seconds * scale) for name, seconds in STORY_SECONDS.items()}
    settings.update({name: str(whole_seconds(seconds, scale)) for name, seconds in STORY_WHOLE_SECONDS.items()})
    return settings
