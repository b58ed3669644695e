"""The stage behind Redis Sentinel, on 127.0.0.1: a job worker that asks the Sentinels for the
primary stops when asked, as one given REDIS_URL does, and follows the primary the Sentinels name
when it loses the one it had."""

import signal
import sys
import time
from pathlib import Path

import pytest
import redis
from rq import Worker
from rq.cli.helpers import get_redis_from_config, read_config_file

from lab.hosts.loopback import LoopbackNetwork
from lab.hosts.redis_ha import MASTER_NAME, REDIS_PORT, SENTINEL_PORT, RedisHA
from lab.runtime.process import wait_until
from lab.testing.rq import waits_for_a_job

STAGE = Path(__file__).resolve().parents[1]
RQ = Path(sys.executable).with_name("rq")
STOPS_WITHIN = 10  # seconds: RQ stops an idle job worker at once; the last writes take a moment
FOLLOWS_WITHIN = 10  # seconds: its next try, about a second after the first fails, asks the Sentinels
FAILOVER_WAIT = 5  # seconds: TWITPIC_REDIS_FAILOVER_WAIT, shortened


@pytest.fixture
def network():
    with LoopbackNetwork({"redis": 11, "other": 12, "sentinel": 2}) as net:
        yield net


def start_job_worker(sentinel, tmp_path):
    settings = {
        "TWITPIC_DATA_DIR": str(tmp_path),
        "TWITPIC_REDIS_SENTINELS": f"{sentinel.address}:{sentinel.port(SENTINEL_PORT)}",
    }
    return sentinel.process("worker", [RQ, "worker", "-c", "twitpic.rq_config", "--serializer", "json"],
                            cwd=STAGE, env=settings).start()


def client_of(host) -> redis.Redis:
    return redis.Redis(host.address, host.port(REDIS_PORT), socket_timeout=5)


def test_an_idle_job_worker_behind_the_sentinels_stops_when_asked(network, tmp_path):
    """SIGTERM (a process manager's stop) interrupts RQ's wait for the next job; the job worker
    writes that it leaves, and exits. With redis-py 8.1's own Sentinel connection, the interrupted
    wait's reply stayed on the connection, and those writes waited behind it for minutes."""
    RedisHA(network["redis"], [], [network["sentinel"]], tmp_path / "redis").start()
    worker = start_job_worker(network["sentinel"], tmp_path)
    primary = client_of(network["redis"])
    try:
        wait_until(lambda: waits_for_a_job(primary, worker.pid), timeout=30, what="the job worker waits for a job")
        worker.popen.send_signal(signal.SIGTERM)
        wait_until(lambda: not worker.alive, timeout=STOPS_WITHIN, what="the job worker stopped")
        assert worker.returncode == 0, worker.log_tail()
        assert Worker.all(connection=primary) == []  # it said it left
    finally:
        primary.close()


def test_a_job_worker_that_loses_the_primary_waits_for_jobs_on_the_one_the_sentinels_name(network, tmp_path):
    """The primary dies after the Sentinels have named another (as a failover leaves it): the job
    worker's wait for the next job is tried again, through the Sentinels, on the new primary.
    redis-py 8.1's Sentinel connection tried again at the address it had, the dead primary's,
    for about a minute (redis-py issue 3874), while jobs queued on the new one waited."""
    servers = RedisHA(network["redis"], [], [network["sentinel"]], tmp_path / "redis").start()
    servers.start_server(network["other"])
    worker = start_job_worker(network["sentinel"], tmp_path)
    old, new = client_of(network["redis"]), client_of(network["other"])
    sentinel = redis.Redis(network["sentinel"].address, network["sentinel"].port(SENTINEL_PORT), socket_timeout=5)
    try:
        wait_until(lambda: waits_for_a_job(old, worker.pid), timeout=30, what="the job worker waits for a job")
        # The Sentinel names the other server the primary, then the old one dies.
        sentinel.sentinel_remove(MASTER_NAME)
        sentinel.sentinel_monitor(MASTER_NAME, network["other"].address, network["other"].port(REDIS_PORT), 1)
        network.crash("redis")
        wait_until(lambda: waits_for_a_job(new, worker.pid), timeout=FOLLOWS_WITHIN,
                   what="the job worker waits for a job on the new primary")
        assert worker.alive, worker.log_tail()
    finally:
        for client in (old, new, sentinel):
            client.close()


def test_with_no_primary_named_a_job_worker_s_command_gives_up_after_the_failover_wait(network, tmp_path,
                                                                                       monkeypatch):
    """No server is the primary for minutes: a command of the job worker's client asks the
    Sentinels about once a second, and gives up after about TWITPIC_REDIS_FAILOVER_WAIT seconds.
    Reconnecting through redis-py's `connect()` instead runs a whole Retry of its own inside each
    try of the command's: five seconds became twenty, and the stages' minute would be an hour."""
    RedisHA(network["redis"], [], [network["sentinel"]], tmp_path / "redis").start()
    sentinel = network["sentinel"]
    monkeypatch.setenv("TWITPIC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TWITPIC_REDIS_SENTINELS", f"{sentinel.address}:{sentinel.port(SENTINEL_PORT)}")
    monkeypatch.setenv("TWITPIC_REDIS_FAILOVER_WAIT", str(FAILOVER_WAIT))
    sys.modules.pop("twitpic.rq_config", None)  # read afresh, as `rq worker -c` does
    # The job workers' client, as `rq worker -c twitpic.rq_config` makes it.
    connection = get_redis_from_config(read_config_file("twitpic.rq_config"))
    sentinels = redis.Redis(sentinel.address, sentinel.port(SENTINEL_PORT), socket_timeout=5)
    try:
        assert connection.ping()
        sentinels.sentinel_remove(MASTER_NAME)  # it names no primary any more
        network.crash("redis")
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            connection.ping()
        assert time.monotonic() - started < 2 * FAILOVER_WAIT
    finally:
        connection.close()
        sentinels.close()
        sys.modules.pop("twitpic.rq_config", None)
