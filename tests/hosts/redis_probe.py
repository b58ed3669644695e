"""Run inside a world by tests/hosts/test_redis_ha.py: a primary, two replicas and three Sentinels
on six hosts; the primary's host crashes; print what the Sentinels did, as JSON lines."""

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


HOSTS = {"web": 2, "w1": 3, "w2": 4, "r1": 11, "r2": 12, "r3": 13}

with tempfile.TemporaryDirectory() as folder, Network(HOSTS) as net:
    ha = RedisHA(net["r1"], [net["r2"], net["r3"]], [net["web"], net["w1"], net["w2"]], Path(folder)).start()
    report("started", master=list(ha.master_address()))
    with redis.Redis(net["r1"].address, REDIS_PORT, socket_timeout=1) as primary:
        primary.rpush("items", *range(1000))
        primary.wait(2, 2000)  # both replicas have them all
    replicas = {(net[name].address, REDIS_PORT): name for name in ("r2", "r3")}
    crashed_at = time.monotonic()
    net.crash("r1")
    wait_until(lambda: ha.master_address() in replicas, timeout=30, what="a failover")
    failover = time.monotonic() - crashed_at
    promoted_name = replicas[ha.master_address()]
    other = net["r3" if promoted_name == "r2" else "r2"]

    def follows_the_new_primary() -> bool:
        with redis.Redis(other.address, REDIS_PORT, socket_timeout=1) as server:
            role = server.role()
        return role[0] == b"slave" and role[1] == net[promoted_name].address.encode() and role[3] == b"connected"

    # The Sentinels point the other replica at the new primary: it has a replica of its own.
    wait_until(follows_the_new_primary, timeout=30, what="the other replica follows the new primary")
    with redis.Redis(net[promoted_name].address, REDIS_PORT, socket_timeout=1) as promoted:
        report("failed over", master=list(ha.master_address()), seconds=round(failover, 2),
               items=promoted.llen("items"), role=promoted.role()[0].decode(),
               replicas=promoted.info("replication")["connected_slaves"])
