import pytest

from lab.twitter import FakeTwitter


@pytest.fixture(scope="module")
def running_twitter():
    """One fake Twitter per test module, as a real subprocess on free ports."""
    # Scale 1: these tests measure the latency they set, in real milliseconds.
    twitter = FakeTwitter.start(latency_ms=(0, 0), seed=7, time_scale=1.0)
    try:
        yield twitter
    finally:
        twitter.stop()


@pytest.fixture
def twitter(running_twitter):
    """The module's fake Twitter, back to `up`, no latency, an empty ledger."""
    running_twitter.control(mode="up", latency_ms=[0, 0], fail_rate=0.3, reject_duplicates=False)
    running_twitter.reset()
    return running_twitter
