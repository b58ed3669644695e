"""The breaker's two clocks: failures count only within a window, and an open breaker lets a
trial call through by itself after its cool-down (half-open), and closes when that call works.
"""

import time

import pytest
import redis

from lab.runtime.redis_server import RedisServer

THRESHOLD = 3
WINDOW = COOLDOWN = 1.5  # seconds: long enough that a busy machine cannot blur them
PAST = 0.5  # how long past a window or cool-down the tests wait


@pytest.fixture
def breaker(tmp_path):
    from twitpic.breaker import CircuitBreaker

    with RedisServer(tmp_path / "redis") as server, redis.Redis.from_url(server.url) as connection:
        yield CircuitBreaker(
            connection, "twitter", threshold=THRESHOLD, window=WINDOW, cooldown=COOLDOWN, trial=COOLDOWN
        )


def test_failures_older_than_the_window_are_forgotten(breaker):
    for _ in range(THRESHOLD - 1):
        breaker.record_failure(trial=False)
    time.sleep(WINDOW + PAST)
    breaker.record_failure(trial=False)  # one more, but the others are out of the window
    assert not breaker.is_open(), f"failures from more than {WINDOW} s ago still counted"


def test_the_window_starts_at_the_first_failure_and_later_ones_do_not_move_it(breaker):
    """Failures a little less than a window apart: by the last one, the first is more than a
    window old and forgotten, so the breaker stays closed. A window that each failure starts
    again (an expiry set on every failure) would count all of them and open it."""
    for number in range(THRESHOLD):
        if number:
            time.sleep(WINDOW * 0.6)
        breaker.record_failure(trial=False)
    assert not breaker.is_open(), "each failure moved the window: it must start at the first"


def test_an_open_breaker_lets_one_trial_call_through_after_its_cooldown(breaker):
    from twitpic.breaker import CircuitOpen

    for _ in range(THRESHOLD):
        breaker.record_failure(trial=False)
    with pytest.raises(CircuitOpen):
        breaker.check()  # open: the job waits, Twitter is left alone
    left = breaker.seconds_left()
    assert left > COOLDOWN / 2, f"the breaker was open for {left} s more, not a cool-down of {COOLDOWN} s"

    time.sleep(COOLDOWN + PAST)
    assert breaker.check() is True  # half-open: this call is the trial, and it may go ahead...
    with pytest.raises(CircuitOpen, match="trial"):
        breaker.check()  # ...while the others wait for it
    breaker.record_success(trial=True)  # Twitter answered it: closed
    assert not breaker.is_open(), f"the breaker was still open {COOLDOWN + PAST} s after it opened"
    assert breaker.check() is False
    breaker.record_failure(trial=False)
    assert not breaker.is_open()  # the count started afresh: one failure does not open it
