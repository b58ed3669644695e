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
