"""Redis (the lab's Valkey) as production runs it: a primary, two replicas, and three Sentinels
that promote a replica when the primary is gone. Two, so that the new primary has a replica of its
own, which `min-replicas-to-write` needs to take writes.

The servers keep an append-only file (fsync every second) and refuse writes when full
(`noeviction`), the settings chapter 04 asks for. Sentinel's timers are shorter than Redis's
examples (30 s, and 5 s in its tutorial), so that a failover fits in a short run: a primary that
has not answered for a second is down for that Sentinel, and two Sentinels (the quorum) agreeing
start a failover. The failover timeout is not that short: a Sentinel that voted in a failover
starts one of its own, for the same primary, two timeouts later if it has not heard of the new
primary by then, and may promote the other replica. With 3 s, one run of the committed set had
two primaries, r2 and r3, for some 13 s.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lab.hosts.network import Host
from lab.runtime.process import ManagedProcess, wait_until
from lab.runtime.redis_server import redis_argv, redis_server_binary

MASTER_NAME = "twitpic"  # the name the Sentinels know the primary by, and the app asks for
REDIS_PORT = 6379
SENTINEL_PORT = 26379
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 10_000
# With no password, Redis answers only its own machine, unless told otherwise. The other hosts are
# the world's alone: nothing outside it can reach them.
PROTECTED_MODE_OFF = ["--protected-mode", "no"]
# A defence the lab can switch on: a server refuses writes while no replica has acknowledged its
# stream within the last MIN_REPLICAS_MAX_LAG seconds (replicas acknowledge every second).
MIN_REPLICAS_MAX_LAG = 2


@dataclass
class RedisHA:
    primary: Host
    replicas: list[Host]
    sentinel_hosts: list[Host]
    data_dir: Path
    appendfsync: str = "everysec"
    min_replicas: bool = False  # min-replicas-to-write 1: no write that no replica could copy
    maxmemory_policy: str = "noeviction"  # when full: refuse writes (or, say, allkeys-lru: delete keys)

    def __post_init__(self):
        self.binary = redis_server_binary()
        self.servers: dict[str, ManagedProcess] = {}
        self.sentinels: list[ManagedProcess] = []

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [(host.address, host.port(SENTINEL_PORT)) for host in self.sentinel_hosts]

    def server_argv(self, host: Host, replica_of: Host | None) -> list[str]:
        folder = self.data_dir / host.name
        folder.mkdir(parents=True, exist_ok=True)
        argv = redis_argv(self.binary, host.port(REDIS_PORT), folder, self.appendfsync, host=host.address,
                          maxmemory_policy=self.maxmemory_policy)
        argv += PROTECTED_MODE_OFF
        if self.min_replicas:
            argv += ["--min-replicas-to-write", "1", "--min-replicas-max-lag", str(MIN_REPLICAS_MAX_LAG)]
        if replica_of is not None:
            argv += ["--replicaof", replica_of.address, str(replica_of.port(REDIS_PORT))]
        return argv

    def start_server(self, host: Host, replica_of: Host | None = None) -> ManagedProcess:
        server = host.process("redis", self.server_argv(host, replica_of), port=host.port(REDIS_PORT)).start()
        self.servers[host.name] = server
        return server

    def restart_server(self, host: Host) -> ManagedProcess:
        """Kill the server on `host` and start it again at once, on the same files, as a service
        manager would (systemd's Restart=always): the primary comes back a primary."""
        host.signal_all(signal.SIGKILL)
        self.servers[host.name].stop()  # reaped
        return self.start_server(host)

    def start_sentinel(self, host: Host) -> ManagedProcess:
        config = self.data_dir / f"sentinel-{host.name}.conf"  # Sentinel writes what it learns here
        config.write_text(
            f"port {host.port(SENTINEL_PORT)}\n"
            f"bind {host.address}\n"
            "protected-mode no\n"
            f"dir {self.data_dir}\n"
            f"sentinel monitor {MASTER_NAME} {self.primary.address} {self.primary.port(REDIS_PORT)} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        sentinel = host.process("sentinel", [self.binary, str(config), "--sentinel"],
                                port=host.port(SENTINEL_PORT)).start()
        self.sentinels.append(sentinel)
        return sentinel

    def start(self, timeout: float = 30) -> RedisHA:
        self.start_server(self.primary)
        for replica in self.replicas:
            self.start_server(replica, replica_of=self.primary)
        for host in self.sentinel_hosts:
            self.start_sentinel(host)
        wait_until(self.settled, timeout=timeout, what="every Sentinel knows the servers and the other Sentinels")
        # With min-replicas-to-write, the primary takes no write before a replica has caught up.
        wait_until(self.replicas_online, timeout=timeout, what="the replicas have copied the primary")
        return self

    def replicas_online(self) -> bool:
        """Have the replicas copied the primary, and do they keep up (the primary says)?"""
        try:
            with redis.Redis(self.primary.address, self.primary.port(REDIS_PORT), socket_timeout=1) as server:
                replication = server.info("replication")
        except redis.RedisError:
            return False
        found = [replication.get(f"slave{n}", {}) for n in range(len(self.replicas))]
        return all(replica.get("state") == "online" and replica.get("lag", 99) <= 1 for replica in found)

    def settled(self) -> bool:
        """Does every Sentinel see the primary up, its replicas, and the other Sentinels?"""
        others = len(self.sentinel_hosts) - 1
        for address in self.sentinel_addresses:
            try:
                with redis.Redis(*address, socket_timeout=1, decode_responses=True) as sentinel:
                    master = sentinel.sentinel_master(MASTER_NAME)
            except redis.RedisError:
                return False
            if (master["num-other-sentinels"], master["num-slaves"]) != (others, len(self.replicas)) \
                    or master["is_odown"]:
                return False
        return True

    def one_primary(self) -> bool:
        """Does exactly one server say it is the primary? A server that refuses the connection is
        down; one that does not answer in time may still be a primary: not yet."""
        primaries = 0
        for host in (self.primary, *self.replicas):
            try:
                with redis.Redis(host.address, host.port(REDIS_PORT), socket_timeout=2, socket_connect_timeout=2,
                                 retry=Retry(NoBackoff(), 0)) as server:
                    primaries += server.execute_command("ROLE")[0] == b"master"
            except redis.TimeoutError:
                return False
            except redis.ConnectionError:
                continue  # down: nothing listens there
        return primaries == 1

    def master_address(self) -> tuple[str, int] | None:
        """The primary's address, as the first Sentinel that answers names it."""
        for address in self.sentinel_addresses:
            try:
                with redis.Redis(*address, socket_timeout=1, decode_responses=True) as sentinel:
                    found = sentinel.sentinel_get_master_addr_by_name(MASTER_NAME)
            except redis.RedisError:
                continue
            if found:
                return found[0], int(found[1])
        return None
