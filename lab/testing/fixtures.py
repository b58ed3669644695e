"""Pytest fixtures for the fake Twitter, shared by the lab's tests and every stage's tests.

A conftest imports them by name (`from lab.testing.fixtures import running_twitter, twitter`), so a reader
of a stage's conftest can see where they come from.
"""

import pytest

from lab.twitter import FakeTwitter


@pytest.fixture(scope="module")
def running_twitter():
    """One fake Twitter per test module, a real subprocess on free ports.

    Scale 1: the latencies that tests set are real milliseconds.
    """
    twitter = FakeTwitter.start(latency_ms=(0, 0), seed=7, time_scale=1.0)
    try:
        yield twitter
    finally:
        twitter.stop()


@pytest.fixture
def twitter(running_twitter):
    """The module's fake Twitter, `up` with no latency and an empty ledger, for each test."""
    running_twitter.control(mode="up", latency_ms=[0, 0], fail_rate=0.3, reject_duplicates=False, retry_after=None)
    running_twitter.reset()
    yield running_twitter
    running_twitter.set_mode("up")  # release anything a test left hanging
