"""Backpressure from a bounded queue: a full queue refuses the tweet, and the web request knows.

The queue server here is a private one whose queues hold at most two items, so the third tweet
finds the queue full and the server answers NOT_STORED.
"""

import logging

import pytest
from pymemcache.exceptions import MemcacheError

from lab.kestrel.stats import read_stats
from lab.runtime.kestrel_server import kestrel_process

MAX_ITEMS = 2


@pytest.fixture
def bounded_queue(tmp_path):
    """The address of a queue server that refuses a third item on any queue."""
    with kestrel_process(tmp_path / "kestrel", "--max-items", str(MAX_ITEMS)) as server:
        yield ("127.0.0.1", server.port)


def test_a_full_queue_refuses_the_tweet_and_enqueue_says_so(bounded_queue):
    from twitpic.queue import connect, enqueue_tweet

    client = connect(bounded_queue)
    try:
        for n in range(MAX_ITEMS):
            enqueue_tweet(client, "bob", f"fits {n}")
        with pytest.raises(MemcacheError):
            enqueue_tweet(client, "bob", "one too many")
    finally:
        client.close()
    assert int(read_stats(*bounded_queue)["queue_tweets_items"]) == MAX_ITEMS


def test_a_web_request_on_a_full_queue_logs_the_tweet_as_lost(bounded_queue, tmp_path, caplog):
    from twitpic import create_app
    from twitpic.queue import connect, enqueue_tweet, queue_tweet

    client = connect(bounded_queue)
    try:
        for n in range(MAX_ITEMS):
            enqueue_tweet(client, "bob", f"fits {n}")
    finally:
        client.close()
    app = create_app({"KESTREL_ADDRESS": bounded_queue, "PHOTO_DIR": str(tmp_path / "photos")})

    with app.app_context(), caplog.at_level(logging.ERROR, logger="twitpic.queue"):
        queued = queue_tweet("bob", "one too many")  # no exception: the request goes on

    assert queued is None, "the queue refused the tweet, but queue_tweet says it queued it"
    assert "tweet lost" in caplog.text
