"""The stage's timeouts compose: RQ's time limit for a run of the job is longer than everything
the run may wait on, and settings that would make them cross are refused at start."""

import pytest

from lab.runtime.redis_server import RedisServer
from lab.testing.fixtures import running_twitter, twitter  # noqa: F401


@pytest.fixture
def environment(monkeypatch, tmp_path):
    def set_environment(**values):
        monkeypatch.setenv("TWITPIC_DATA_DIR", str(tmp_path))
        for name, value in values.items():
            monkeypatch.setenv(name, str(value))
        from twitpic.settings import settings_from_environment

        return settings_from_environment()

    return set_environment


@pytest.mark.parametrize("values", [
    {},
    {"TWITPIC_TWITTER_READ_TIMEOUT": 1.0, "TWITPIC_TWITTER_CONNECT_TIMEOUT": 0.3},
    {"TWITPIC_TWITTER_READ_TIMEOUT": 25},
    {"TWITPIC_DATABASE_TIMEOUT": 0.5, "TWITPIC_DATABASE_URL": "postgresql://127.0.0.1/test"},
    {"TWITPIC_DATABASE_TIMEOUT": 1.5, "TWITPIC_DATABASE_URL": "mysql://root@127.0.0.1/test"},
], ids=["defaults", "the-tests", "a-patient-twitter", "postgresql", "mariadb"])
def test_the_job_timeout_outlasts_everything_one_run_may_wait_on(environment, values):
    from twitpic.settings import RQ_ABANDONED_AFTER, attempt_budget

    settings = environment(**values)
    assert sum(attempt_budget(settings).values()) < settings["JOB_TIMEOUT"] <= RQ_ABANDONED_AFTER


def test_a_job_timeout_shorter_than_the_waits_is_refused(environment):
    from twitpic.settings import SettingsError

    with pytest.raises(SettingsError, match="no longer than the 35 s one run may wait"):
        environment(TWITPIC_JOB_TIMEOUT=30)


def test_waits_that_would_outlast_rqs_patience_are_refused(environment):
    from twitpic.settings import SettingsError

    with pytest.raises(SettingsError, match="RQ could run the job again while its first run still goes on"):
        environment(TWITPIC_TWITTER_READ_TIMEOUT=40)


def test_a_duration_that_is_not_one_is_refused(environment):
    from twitpic.settings import SettingsError

    with pytest.raises(SettingsError, match="TWITPIC_REDIS_TIMEOUT must be a positive number of seconds"):
        environment(TWITPIC_REDIS_TIMEOUT=-1)
    with pytest.raises(SettingsError, match="TWITPIC_REDIS_FAILOVER_WAIT must be 0 or a positive number"):
        environment(TWITPIC_REDIS_FAILOVER_WAIT=-1)


@pytest.mark.parametrize("twitter_mode", ["up", "down", "duplicate", "limited"])
def test_the_budget_counts_every_wait_of_the_job(environment, twitter, tmp_path, monkeypatch, twitter_mode):  # noqa: F811
    """Run the job for real on each of its paths, counting its database statements and its Redis
    commands: none takes more than settings.py's budget counts."""
    from twitpic import db as db_module
    from twitpic import tasks
    from twitpic.db import init_db
    from twitpic.settings import JOB_DATABASE_WAITS, JOB_REDIS_WAITS

    with RedisServer(tmp_path / "redis") as server:
        settings = environment(REDIS_URL=server.url, TWITTER_API_URL=f"http://127.0.0.1:{twitter.port}")
        init_db(settings["DATABASE_URL"], settings["DATABASE_TIMEOUT"])
        counts = {"database": 0, "redis": 0}

        class CountedDatabase(db_module.Database):
            def __init__(self, *args):
                counts["database"] += 1  # connecting
                super().__init__(*args)

            def execute(self, statement, params=()):
                counts["database"] += 1
                return super().execute(statement, params)

        def counted_connect(settings):
            client = connect(settings)
            execute = client.execute_command

            def counted(*args, **options):
                counts["redis"] += 1
                return execute(*args, **options)

            client.execute_command = counted
            pipeline = client.pipeline

            def counted_pipeline(*args, **options):  # a pipeline's commands go in one round trip
                batch = pipeline(*args, **options)
                run = batch.execute

                def counted_run(*args, **options):
                    counts["redis"] += 1
                    return run(*args, **options)

                batch.execute = counted_run
                return batch

            client.pipeline = counted_pipeline
            return client

        connect = tasks.connect
        monkeypatch.setattr(tasks, "Database", CountedDatabase)
        monkeypatch.setattr(tasks, "connect", counted_connect)
        breaker = tasks.breaker_for(connect(settings), settings)
        worst = {"database": 0, "redis": 0}

        def run(tweet_id: str, text: str) -> None:
            counts.update(database=0, redis=0)
            tasks.post_tweet_job(tweet_id, "bob", text)
            worst.update({name: max(worst[name], counts[name]) for name in worst})

        if twitter_mode == "duplicate":
            tasks.post_tweet_job("comment-first", "bob", "the same text")
        else:
            twitter.set_mode(twitter_mode)
        for n in range(breaker.threshold + 2):  # until the breaker opens, and after
            run(f"comment-{n}", "the same text" if twitter_mode == "duplicate" else f"n{n}")
        run("comment-0", "n0")  # a second run of the first tweet
        database = db_module.Database(settings["DATABASE_URL"], settings["DATABASE_TIMEOUT"])
        database.execute(
            "INSERT INTO posted_tweets (tweet_id, holder, held_until) VALUES ('comment-held', 'x', 1e12)")
        database.close()
        run("comment-held", "held")  # another run holds it
        if twitter_mode == "down":
            breaker.redis.delete(breaker.open_key)  # cooled down: the next run is the trial, and fails
            run("comment-trial", "trial")
            breaker.redis.delete(breaker.open_key)
            breaker.redis.set(breaker.trial_key, 1)  # another run's trial call is under way
            run("comment-waits", "waits for the trial")
    assert worst["database"] <= JOB_DATABASE_WAITS
    assert worst["redis"] + 1 <= JOB_REDIS_WAITS  # and the connect, which no command counts
    print(f"{twitter_mode}: at most {worst['database']} database waits, {worst['redis']} Redis commands")


def test_sentinels_name_the_primary_for_the_app_and_for_rqs_job_workers(environment, monkeypatch):
    """With TWITPIC_REDIS_SENTINELS, every client asks them for the primary (redis-py's Sentinel),
    and the job workers do too, through RQ's own Sentinel settings; REDIS_URL is then unused."""
    import importlib
    import sys

    from redis.sentinel import SentinelConnectionPool

    from twitpic import queue

    def rq_config():  # the job worker's settings module, as `rq worker -c` imports it: afresh
        sys.modules.pop("twitpic.rq_config", None)
        return importlib.import_module("twitpic.rq_config")

    settings = environment(TWITPIC_REDIS_SENTINELS="10.0.0.2:26379, 10.0.0.3:26379")
    assert settings["REDIS_SENTINELS"] == [("10.0.0.2", 26379), ("10.0.0.3", 26379)]
    client = queue.connect(settings)
    assert isinstance(client.connection_pool, SentinelConnectionPool)
    assert client.connection_pool.service_name == "twitpic"
    assert client.connection_pool.connection_class is queue.SentinelConnection  # redis-py faults mended
    config = rq_config()
    assert config.SENTINEL["INSTANCES"] == settings["REDIS_SENTINELS"]
    assert not hasattr(config, "REDIS_URL")  # RQ would use it first, and never ask the Sentinels
    # What `rq worker -c twitpic.rq_config` makes of it: a client of the Sentinels' primary.
    from rq.cli.helpers import get_redis_from_config, read_config_file

    worker_connection = get_redis_from_config(read_config_file("twitpic.rq_config"))
    assert isinstance(worker_connection.connection_pool, SentinelConnectionPool)
    assert worker_connection.connection_pool.connection_class is queue.SentinelConnection
    # A primary it cannot reach is asked for again, about a second apart, for REDIS_FAILOVER_WAIT
    # seconds (60 by default): longer than a failover, which then ends no job worker.
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    waits = Retry(ExponentialBackoff(cap=1, base=0.1), 60)
    assert worker_connection.connection_pool.connection_kwargs["retry"] == waits
    environment(TWITPIC_REDIS_FAILOVER_WAIT="0")  # exit at once, for the process manager to start again
    assert rq_config().SENTINEL["CONNECTION_KWARGS"]["retry"].get_retries() == 0

    monkeypatch.delenv("TWITPIC_REDIS_SENTINELS")
    config = rq_config()
    assert (config.REDIS_URL, hasattr(config, "SENTINEL")) == (settings["REDIS_URL"], False)


@pytest.mark.parametrize("url, driver", [
    ("postgresql://127.0.0.1:1/test", "psycopg"), ("mysql://root@127.0.0.1:1/test", "pymysql"),
], ids=["postgresql", "mariadb"])
def test_a_job_worker_imports_the_database_driver_before_it_forks(tmp_path, url, driver):
    """`rq worker -c twitpic.rq_config` imports the site's database driver, so that the work horse
    it forks for each job finds it imported; nothing connects yet (port 1 answers nothing)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import twitpic

    environment = {**os.environ, "TWITPIC_DATA_DIR": str(tmp_path), "TWITPIC_DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-c", f"import sys, twitpic.rq_config; print({driver!r} in sys.modules)"],
        cwd=Path(twitpic.__file__).parent.parent, env=environment, capture_output=True, text=True, timeout=60,
    )
    assert result.stdout.split() == ["True"], result.stderr


def test_a_sentinel_address_without_its_port_is_refused(environment):
    from twitpic.settings import SettingsError

    with pytest.raises(SettingsError, match="TWITPIC_REDIS_SENTINELS must be host:port"):
        environment(TWITPIC_REDIS_SENTINELS="10.0.0.2")
