"""The job when Redis fails under it: a tweet posted is marked posted first, and a reservation is
given up, so that RQ's crash retry neither posts it again nor waits for the lease to run out."""

import pytest
import redis

from lab.runtime.redis_server import RedisServer
from lab.testing.fixtures import running_twitter, twitter  # noqa: F401


@pytest.fixture
def job(monkeypatch, tmp_path, twitter):  # noqa: F811
    """The job's module, its settings on a Redis of its own and the fake Twitter, its tables made."""
    with RedisServer(tmp_path / "redis") as server:
        monkeypatch.setenv("TWITPIC_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("REDIS_URL", server.url)
        monkeypatch.setenv("TWITTER_API_URL", f"http://127.0.0.1:{twitter.port}")
        from twitpic import tasks
        from twitpic.db import Database, init_db
        from twitpic.settings import settings_from_environment

        settings = settings_from_environment()
        init_db(settings["DATABASE_URL"], settings["DATABASE_TIMEOUT"])
        database = Database(settings["DATABASE_URL"], settings["DATABASE_TIMEOUT"])
        yield tasks, database
        database.close()


def row(database, tweet_id):
    return database.one("SELECT holder, posted_at FROM posted_tweets WHERE tweet_id = ?", (tweet_id,))


def test_redis_failing_after_the_post_leaves_the_tweet_marked_posted(job, monkeypatch, twitter):  # noqa: F811
    tasks, database = job

    def gone(self, trial):
        raise redis.ConnectionError("Redis went away")

    text = "posted, then Redis went away https://twitpic.example/p"
    with monkeypatch.context() as patched:
        patched.setattr(tasks.CircuitBreaker, "record_success", gone)
        with pytest.raises(redis.ConnectionError):
            tasks.post_tweet_job("comment-1", "bob", text)
    assert row(database, "comment-1")["posted_at"] is not None
    assert tasks.post_tweet_job("comment-1", "bob", text) is None  # RQ's crash retry: posted already
    assert [tweet["text"] for tweet in twitter.ledger()] == [text]


def test_redis_failing_before_the_post_gives_the_reservation_up(job, monkeypatch, twitter):  # noqa: F811
    tasks, database = job

    def gone(self):
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(tasks.CircuitBreaker, "check", gone)
    with pytest.raises(redis.ConnectionError):
        tasks.post_tweet_job("comment-2", "bob", "not posted yet")
    assert row(database, "comment-2") is None  # nothing held: the crash retry goes ahead at once
    assert twitter.ledger() == []
