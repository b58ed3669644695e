"""Stage 04 or 05, unchanged, spread over the lab's hosts and configured only through its settings.

    web  10.77.0.2   gunicorn and the app (and stage 05's relay), a Sentinel
    w1   10.77.0.3   an RQ job worker and the scheduler, a Sentinel
    w2   10.77.0.4   an RQ job worker, a Sentinel
    w3   10.77.0.5   (scale-out only) an RQ job worker, and so on up to w8
    r1   10.77.0.11  the Redis primary
    r2   10.77.0.12  a replica
    r3   10.77.0.13  a replica
    db   10.77.0.20  PostgreSQL: the site's data, `posted_tweets`, stage 05's outbox
    tw   10.77.0.30  the fake Twitter

Each process is the stage's own Procfile line, run on its host with the stage's environment.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import redis
from rq import Worker

from lab.hosts.network import Host, Network
from lab.hosts.redis_ha import MASTER_NAME, RedisHA
from lab.runtime.postgres_server import PostgresServer
from lab.runtime.process import ManagedProcess, wait_until
from lab.runtime.stages import Stage
from lab.runtime.up import RESTARTED
from lab.twitter.client import FakeTwitter

log = logging.getLogger(__name__)

HOSTS = {"web": 2, "w1": 3, "w2": 4, "r1": 11, "r2": 12, "r3": 13, "db": 20, "tw": 30}
REDIS_HOSTS = ("r1", "r2", "r3")  # the primary first
MOST_WORKER_HOSTS = 8  # w1-w8: 10.77.0.3-10
SENTINEL_HOSTS = ("web", "w1", "w2")
WEB_PORT = 8000
POSTGRES_PORT = 5432
TWITTER_PORT, TWITTER_CONTROL_PORT = 8081, 8082
TWITTER_LATENCY_MS = "20-40"


def stop_together(processes: list[ManagedProcess]) -> None:
    """Stop these processes at the same time: an RQ job worker takes a second or two to write its
    last words and leave, and one after the other adds up (eight of them in scale-out)."""
    with ThreadPoolExecutor(max(1, len(processes))) as stopping:
        list(stopping.map(ManagedProcess.stop, processes))


def site_hosts(worker_hosts: int = 2) -> dict[str, int]:
    """The hosts' names and the last number of their addresses, with `worker_hosts` job worker hosts."""
    if not 2 <= worker_hosts <= MOST_WORKER_HOSTS:
        raise ValueError(f"between 2 and {MOST_WORKER_HOSTS} job worker hosts, not {worker_hosts}")
    return {**HOSTS, **{f"w{n}": 2 + n for n in range(1, worker_hosts + 1)}}


class HostedSite:
    def __init__(self, stage: Stage, net: Network, data_dir: Path, *, time_scale: float = 1.0,
                 appendfsync: str = "everysec", restart: bool = True, min_replicas: bool = False,
                 client_retry: bool = True, noeviction: bool = True, idempotent_record: bool = True,
                 twitter_latency_ms: str = TWITTER_LATENCY_MS, twitter_refuses_repeats: bool = True,
                 settings: dict[str, str] | None = None):
        self.stage, self.net, self.data_dir, self.time_scale = stage, net, Path(data_dir), time_scale
        self.restart = restart  # as systemd's Restart=always would: start an exited job worker again
        self.client_retry = client_retry  # a job worker waits out a failover (the stage's default)
        self.idempotent_record = idempotent_record  # posted_tweets has its key (the stage's schema)
        self.twitter_latency_ms = twitter_latency_ms
        self.settings = settings or {}  # more of the stage's settings, as environment variables
        self.twitter_refuses_repeats = twitter_refuses_repeats  # as the real one did: the stages count on it
        self.exits: Counter = Counter()  # host:line -> how many times it exited
        self._supervising = threading.Event()
        self._processes_change = threading.Lock()  # the supervisor's pass, or a change of job workers
        primary, *replicas = (net[name] for name in REDIS_HOSTS)
        self.redis = RedisHA(primary, replicas, [net[name] for name in SENTINEL_HOSTS], self.data_dir / "redis",
                             appendfsync=appendfsync, min_replicas=min_replicas,
                             maxmemory_policy="noeviction" if noeviction else "allkeys-lru")
        self.postgres = PostgresServer(self.data_dir / "postgres", port=net["db"].port(POSTGRES_PORT),
                                       host=net["db"].address, enter=net["db"].enter())
        self.twitter: FakeTwitter | None = None
        self.processes: dict[str, tuple[Host, str, ManagedProcess]] = {}  # host:line -> ...

    @property
    def worker_hosts(self) -> list[Host]:
        return [host for name, host in self.net.hosts.items() if re.fullmatch(r"w\d+", name)]

    @property
    def base_url(self) -> str:
        return f"http://{self.net['web'].address}:{self.net['web'].port(WEB_PORT)}"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@{self.net['db'].address}:{self.net['db'].port(POSTGRES_PORT)}/twitpic"

    def twitter_url(self, usual_port: int) -> str:
        return f"http://{self.net['tw'].address}:{self.net['tw'].port(usual_port)}"

    def environment(self) -> dict[str, str]:
        sentinels = ",".join(f"{address}:{port}" for address, port in self.redis.sentinel_addresses)
        return self.stage.environment({
            "WORKBOOK_TIME_SCALE": repr(self.time_scale),
            "TWITPIC_DATA_DIR": str(self.data_dir / "site"),
            "TWITPIC_DATABASE_URL": self.database_url,
            "TWITTER_API_URL": self.twitter_url(TWITTER_PORT),
            "TWITPIC_REDIS_SENTINELS": sentinels,
            "TWITPIC_REDIS_SENTINEL_MASTER": MASTER_NAME,
            "WEB_HOST": self.net["web"].address,
            "WEB_PORT": str(self.net["web"].port(WEB_PORT)),
            "WEB_WORKERS": "2",
            **({} if self.client_retry else {"TWITPIC_REDIS_FAILOVER_WAIT": "0"}),
            **self.settings,
        })

    def run(self, host: Host, line: str) -> ManagedProcess:
        """The stage's Procfile line `line`, started on `host`; the web once it answers."""
        command = self.stage.processes()[line]
        ready = {"port": host.port(WEB_PORT)} if line == "web" else {"ready": lambda: True}
        process = host.process(line, ["sh", "-c", f"exec {command}"], cwd=self.stage.path,
                               env=self.environment(), **ready).start(timeout=60)
        # Held only once it runs: the supervisor takes a held process that is not running for one
        # that exited, and would start a second one beside it.
        self.processes[f"{host.name}:{line}"] = (host, line, process)
        return process

    def supervise(self) -> None:
        """Start again every job worker, scheduler or relay that exits, until the site stops."""
        while not self._supervising.wait(0.2):
            with self._processes_change:
                self._supervise_once()

    def _supervise_once(self) -> None:
        for key, (host, line, process) in list(self.processes.items()):
            if line in RESTARTED and not process.alive and not self._supervising.is_set():
                self.exits[key] += 1
                process.stop()
                del self.processes[key]  # counted once; `run` adds it again
                if self.restart:
                    try:
                        self.run(host, line)
                    except Exception as error:  # noqa: BLE001  (it exited at start: counted, tried again)
                        log.warning("%s did not start again: %s", key, error)

    def start_job_workers(self, hosts: list[Host]) -> None:
        """An RQ job worker on each host; back once each has said hello to Redis."""
        started = {self.run(host, "worker").pid for host in hosts}
        # A job worker says hello by registering in Redis with its process id.
        wait_until(lambda: started <= self.job_worker_pids(), timeout=60, what="every job worker is up")

    def stop_job_workers(self) -> None:
        """Stop every job worker, politely (RQ's warm shutdown: the job in hand is finished)."""
        with self._processes_change:
            stopping = [self.processes.pop(key)[2] for key in self.running("worker")]
        stop_together(stopping)

    def running(self, line: str) -> list[str]:
        return [key for key, (_, found, _) in self.processes.items() if found == line]

    def start(self, job_workers: bool = True) -> HostedSite:
        net = self.net
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tw = net["tw"]
        twitter = tw.process("twitter", [
            sys.executable, "-m", "lab", "twitter", "--host", tw.address, "--port", str(tw.port(TWITTER_PORT)),
            "--control-port", str(tw.port(TWITTER_CONTROL_PORT)), "--latency-ms", self.twitter_latency_ms,
            *(["--reject-duplicates"] if self.twitter_refuses_repeats else []),
        ], port=tw.port(TWITTER_PORT)).start()
        self.twitter = FakeTwitter(self.twitter_url(TWITTER_PORT), self.twitter_url(TWITTER_CONTROL_PORT), twitter)
        self.postgres.start()
        with psycopg.connect(self.postgres.url, autocommit=True) as admin:
            admin.execute("CREATE DATABASE twitpic")
        self.redis.start()
        release = net["web"].process("release", ["sh", "-c", f"exec {self.stage.procfile()['release']}"],
                                     cwd=self.stage.path, env=self.environment(), ready=lambda: True)
        release.start()
        if release.popen.wait(timeout=60) != 0:
            raise RuntimeError(f"{self.stage.name}'s release failed:\n{release.log_tail()}")
        if not self.idempotent_record:
            self.drop_the_record_s_key()
        self.run(net["web"], "web")
        if "relay" in self.stage.processes():
            self.run(net["web"], "relay")
        self.run(net["w1"], "scheduler")
        if job_workers:
            self.start_job_workers(self.worker_hosts)
        self.start_supervisor()
        return self

    def start_supervisor(self) -> None:
        self._supervisor = threading.Thread(target=self.supervise, daemon=True)
        self._supervisor.start()

    def drop_the_record_s_key(self) -> None:
        """The record without its key, the one thing the stage's code does not hold: a run reserves a
        tweet by adding its row, and with no key to refuse a second row, every run of a job adds its
        own, and posts the tweet."""
        with psycopg.connect(self.database_url, autocommit=True) as database:
            database.execute("ALTER TABLE posted_tweets DROP CONSTRAINT posted_tweets_pkey")

    def primary(self) -> redis.Redis:
        """A client of whichever server the Sentinels call the primary now."""
        address = self.redis.master_address()
        if address is None:
            raise redis.ConnectionError("no Sentinel answers")
        return redis.Redis(*address, socket_timeout=2, socket_connect_timeout=2)

    def job_worker_pids(self) -> set[int]:
        """The process ids of the job workers registered in Redis (a killed one stays listed a while)."""
        try:
            with self.primary() as connection:
                return {worker.pid for worker in Worker.all(connection=connection)}
        except redis.RedisError:
            return set()

    def stop(self) -> None:
        self._supervising.set()
        if hasattr(self, "_supervisor"):
            self._supervisor.join()
        stop_together([process for _, line, process in self.processes.values() if line == "worker"])
        for _, line, process in reversed(list(self.processes.values())):
            if line != "worker":
                process.stop()
        self.postgres.stop()
        if self.twitter is not None:
            self.twitter.stop()

