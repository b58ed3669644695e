"""The shared circuit breaker's rules, on a Redis of its own: open after enough failures, one
trial call after the cool-down, and only the trial's answer closes it."""

import pytest
import redis

from lab.runtime.redis_server import RedisServer

HALF_OPEN = "after the cool-down, the first call must be the trial (half-open)"


@pytest.fixture(scope="module")
def connection(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as server, redis.Redis.from_url(server.url) as client:
        yield client


def test_after_the_cool_down_one_trial_call_tests_twitter_while_the_others_wait(connection):
    from twitpic.breaker import CircuitBreaker, CircuitOpen

    breaker = CircuitBreaker(connection, "trial-test", threshold=2, window=60, cooldown=60, trial=60)
    assert breaker.check() is False  # closed: an ordinary call
    breaker.record_failure(trial=False)
    breaker.record_failure(trial=False)
    with pytest.raises(CircuitOpen, match="open"):
        breaker.check()
    connection.delete(breaker.open_key)  # as Redis does when the cool-down is over

    assert breaker.check() is True, HALF_OPEN  # this call is the trial...
    assert breaker.is_open()  # ...and every other call is held back while it runs
    with pytest.raises(CircuitOpen, match="trial"):
        breaker.check()
    breaker.record_failure(trial=True)  # the trial failed: open again at once
    with pytest.raises(CircuitOpen, match="open"):
        breaker.check()
    breaker.redis.pexpire(breaker.open_key, 5000)
    breaker.record_failure(trial=False)  # a call from before it opened fails late: the cool-down stays
    assert 0 < breaker.seconds_left() <= 5

    connection.delete(breaker.open_key)
    assert breaker.check() is True, HALF_OPEN
    breaker.record_success(trial=True)  # the trial worked: closed, every call goes ahead
    assert breaker.check() is False
    assert breaker.check() is False
    breaker.record_failure(trial=False)
    assert not breaker.is_open()  # and the count starts afresh


def test_a_late_success_while_the_breaker_is_open_does_not_skip_the_trial(connection):
    """A call that started before the breaker opened, and works late: only the trial's answer
    may close the breaker, so after the cool-down one call still tests Twitter first."""
    from twitpic.breaker import CircuitBreaker, CircuitOpen

    breaker = CircuitBreaker(connection, "late-success", threshold=1, window=60, cooldown=60, trial=60)
    assert breaker.check() is False  # a call begins while Twitter seems fine...
    breaker.record_failure(trial=False)  # ...another fails, and opens the breaker
    breaker.record_success(trial=False)  # the first call works, late
    with pytest.raises(CircuitOpen, match="open"):
        breaker.check()
    connection.delete(breaker.open_key)  # the cool-down is over
    assert breaker.check() is True, "a late success closed the breaker: only the trial's answer may"
    with pytest.raises(CircuitOpen, match="trial"):
        breaker.check()  # while the others wait


def test_how_long_a_job_waits_for_the_breaker(connection):
    """Open: the rest of the cool-down. Half-open: the rest of the trial's time, but no more than
    a quarter of a cool-down, so that the jobs come back soon after a trial that answered at once."""
    from twitpic.breaker import CircuitBreaker

    breaker = CircuitBreaker(connection, "waits", threshold=1, window=60, cooldown=20, trial=14)
    assert breaker.seconds_left() == 0
    breaker.record_failure(trial=False)
    assert 19 < breaker.seconds_left() <= 20
    connection.delete(breaker.open_key)
    assert breaker.check() is True, HALF_OPEN
    assert breaker.seconds_left() == 5
    breaker.redis.pexpire(breaker.trial_key, 3000)
    assert 2 < breaker.seconds_left() <= 3
