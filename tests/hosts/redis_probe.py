"""Run inside a world by tests/hosts/test_redis_ha.py: a primary, a replica and three Sentinels on
five hosts; the primary's host crashes; print what the Sentinels did, as JSON lines."""

import json
import tempfile
import time
from pathlib import Path

import redis

from lab.hosts.network import Network
from lab.hosts.redis_ha import REDIS_PORT, RedisHA
from lab.runtime.process import wait_until


def report(step: str, **facts) -> None:
    print(json.dumps({"step": step, **facts}), flush=True)


with tempfile.TemporaryDirectory() as folder, Network({"web": 2, "w1": 3, "w2": 4, "r1": 11, "r2": 12}) as net:
    ha = RedisHA(net["r1"], net["r2"], [net["web"], net["w1"], net["w2"]], Path(folder)).start()
    report("started", master=list(ha.master_address()))
    with redis.Redis(net["r1"].address, REDIS_PORT, socket_timeout=1) as primary:
        primary.rpush("items", *range(1000))
        primary.wait(1, 2000)  # the replica has them all
    crashed_at = time.monotonic()
    net.crash("r1")
    wait_until(lambda: ha.master_address() == (net["r2"].address, REDIS_PORT), timeout=30, what="a failover")
    failover = time.monotonic() - crashed_at
    with redis.Redis(net["r2"].address, REDIS_PORT, socket_timeout=1) as promoted:
        report("failed over", master=list(ha.master_address()), seconds=round(failover, 2),
               items=promoted.llen("items"), role=promoted.role()[0].decode())
