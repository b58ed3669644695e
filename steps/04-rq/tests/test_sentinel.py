"""The stage behind Redis Sentinel, on 127.0.0.1: a job worker that asks the Sentinels for the
primary stops when asked, as one given REDIS_URL does."""

import signal
import sys
from pathlib import Path

import pytest
import redis
from rq import Worker

from lab.hosts.loopback import LoopbackNetwork
from lab.hosts.redis_ha import REDIS_PORT, SENTINEL_PORT, RedisHA
from lab.runtime.process import wait_until
from lab.testing.rq import waits_for_a_job

STAGE = Path(__file__).resolve().parents[1]
RQ = Path(sys.executable).with_name("rq")
STOPS_WITHIN = 10  # seconds: RQ stops an idle job worker at once; the last writes take a moment


@pytest.fixture
def network():
    with LoopbackNetwork({"redis": 11, "sentinel": 2}) as net:
        yield net


def test_an_idle_job_worker_behind_the_sentinels_stops_when_asked(network, tmp_path):
    """SIGTERM (a process manager's stop) interrupts RQ's wait for the next job; the job worker
    writes that it leaves, and exits. With redis-py 8.1's own Sentinel connection, the interrupted
    wait's reply stayed on the connection, and those writes waited behind it for minutes."""
    RedisHA(network["redis"], [], [network["sentinel"]], tmp_path / "redis").start()
    sentinel = network["sentinel"]
    settings = {
        "TWITPIC_DATA_DIR": str(tmp_path),
        "TWITPIC_REDIS_SENTINELS": f"{sentinel.address}:{sentinel.port(SENTINEL_PORT)}",
    }
    worker = sentinel.process("worker", [RQ, "worker", "-c", "twitpic.rq_config", "--serializer", "json"],
                              cwd=STAGE, env=settings).start()
    primary = redis.Redis(network["redis"].address, network["redis"].port(REDIS_PORT), socket_timeout=5)
    try:
        wait_until(lambda: waits_for_a_job(primary, worker.pid), timeout=30, what="the job worker waits for a job")
        worker.popen.send_signal(signal.SIGTERM)
        wait_until(lambda: not worker.alive, timeout=STOPS_WITHIN, what="the job worker stopped")
        assert worker.returncode == 0, worker.log_tail()
        assert Worker.all(connection=primary) == []  # it said it left
    finally:
        primary.close()
