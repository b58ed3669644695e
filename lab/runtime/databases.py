"""Private databases on the PostgreSQL and MariaDB servers, for stage 02's tests and its benchmark.

Each test or run gets a database of its own, created for it and dropped after it: nothing touches
data it did not make. The servers are found by the same variables everywhere. PostgreSQL needs no
server of yours: unless you name one, the embedded one is started for the run
(`embedded_postgresql`). MariaDB has no embedded server: the one you name, or the one on its
usual port.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from lab.runtime.postgres_server import URL_VARIABLE as POSTGRESQL_URL_VARIABLE
from lab.runtime.postgres_server import NoPostgres, PostgresServer

SERVER_URL_VARIABLES = {
    "postgresql": POSTGRESQL_URL_VARIABLE,
    "mariadb": "TWITPIC_TEST_MARIADB_URL",
}
DEFAULT_SERVER_URLS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql://root@127.0.0.1:3306/test",
}

DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mariadb": 3306}


def server_url(backend: str) -> str:
    return os.environ.get(SERVER_URL_VARIABLES[backend]) or DEFAULT_SERVER_URLS[backend]


def connect_server(backend: str, url: str):
    """An autocommit connection to a PostgreSQL or MariaDB server, to create and drop databases."""
    if backend == "postgresql":
        import psycopg

        return psycopg.connect(url, autocommit=True, connect_timeout=3)
    import pymysql

    parts = urlparse(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=parts.path.lstrip("/") or None,
        autocommit=True,
        connect_timeout=3,
    )


def without_password(url: str) -> str:
    parts = urlparse(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


_embedded_problem: dict[str, str] = {}  # why no embedded server started, for the skip message


@contextmanager
def embedded_postgresql(scratch_dir: Path) -> Iterator[str | None]:
    """For the length of the block, a PostgreSQL for private databases: the one named in
    TWITPIC_TEST_POSTGRESQL_URL if there is one, else the embedded server, started in `scratch_dir`
    and named in that variable for this process and the processes it starts. Yields the embedded
    server's version, or None when it is not the one used."""
    variable = SERVER_URL_VARIABLES["postgresql"]
    if os.environ.get(variable):
        yield None
        return
    try:
        server = PostgresServer(scratch_dir / "postgresql").start()
    except NoPostgres as problem:
        _embedded_problem["postgresql"] = str(problem)
        yield None
        return
    os.environ[variable] = server.url
    try:
        yield server.version()
    finally:
        os.environ.pop(variable, None)
        server.stop()


def unreachable_reason(backend: str) -> str | None:
    """None when a private database can be made on the backend; otherwise why not."""
    if backend == "sqlite":
        return None
    url = server_url(backend)
    try:
        connect_server(backend, url).close()
    except Exception as error:  # any failure to connect means: no server to measure
        embedded = f"{_embedded_problem[backend]}; " if backend in _embedded_problem else ""
        return (f"{embedded}no server at {without_password(url)} ({error.__class__.__name__});"
                f" set {SERVER_URL_VARIABLES[backend]}")
    return None


@contextmanager
def private_database(backend: str, scratch_dir: Path, prefix: str = "twitpic") -> Iterator[str]:
    """The URL of a new, empty database, dropped (or deleted) afterwards. SQLite's is a file in
    `scratch_dir`; a server's is named `<prefix>_<random>`."""
    if backend == "sqlite":
        path = scratch_dir / f"queue-{uuid.uuid4().hex[:12]}.sqlite3"
        try:
            yield f"sqlite:///{path}"
        finally:
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)
        return
    admin_url = server_url(backend)
    admin = connect_server(backend, admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin.cursor().execute(f"CREATE DATABASE {name}")
        try:
            yield admin_url.rsplit("/", 1)[0] + "/" + name
        finally:
            force = " WITH (FORCE)" if backend == "postgresql" else ""  # even if a worker lingers
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {name}{force}")
    finally:
        admin.close()


