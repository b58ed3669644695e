import pytest

from lab.runtime.timescale import (
    ENV_VAR,
    TimeScaleError,
    set_time_scale,
    time_scale,
    whole_seconds,
)


def test_the_default_scale_is_the_story_itself(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert time_scale() == 1.0


def test_the_scale_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "0.01")
    assert time_scale() == pytest.approx(0.01)


def test_set_time_scale_reaches_child_processes(monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv(ENV_VAR, "1")  # so that monkeypatch restores it after set_time_scale
    set_time_scale(0.25)
    out = subprocess.run(
        [sys.executable, "-c", "from lab.runtime.timescale import time_scale; print(time_scale() * 4)"],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "1.0"


@pytest.mark.parametrize("text", ["0", "-1", "fast", "inf", "nan"])
def test_a_bad_scale_is_a_clear_error(monkeypatch, text):
    monkeypatch.setenv(ENV_VAR, text)
    with pytest.raises(TimeScaleError, match="time scale must be"):
        time_scale()


@pytest.mark.parametrize("seconds, scale, expected", [(20, 1, 20), (20, 0.1, 2), (20, 0.01, 1), (30, 0.05, 2)])
def test_whole_seconds_rounds_and_never_reaches_zero(seconds, scale, expected):
    assert whole_seconds(seconds, scale) == expected  # 0 would mean "no timeout" to gunicorn and RQ
