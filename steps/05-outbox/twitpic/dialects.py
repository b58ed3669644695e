"""The one place that knows how SQLite, PostgreSQL and MariaDB/MySQL differ.

Everything else in the app writes plain SQL with `?` placeholders.
"""

from __future__ import annotations

import math
import re
import sqlite3
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

QUOTED_STRING = re.compile(r"('(?:[^']|'')*')")  # '...', where '' is a quote inside


@dataclass(frozen=True)
class Dialect:
    name: str
    placeholder: str  # what `?` becomes
    id_column: str  # an auto-incrementing primary key
    insert_ignore: str  # INSERT that skips rows whose key exists
    skip_locked: bool  # supports SELECT ... FOR UPDATE SKIP LOCKED
    epoch_now: str  # the database's clock, in seconds since 1970

    def sql(self, statement: str) -> str:
        """`statement` with the driver's placeholders. A `?` inside a quoted string is text, and a
        `%` is doubled, since drivers whose placeholder is `%s` read `%%` as a `%` (when given
        parameters, as `Database.execute` always does). Write a quote inside a string as `''`:
        MariaDB's backslash escapes are not understood, nor a `?` in a comment or in "quotes"."""
        if self.placeholder == "?":
            return statement
        # Splitting on a group keeps the quoted strings, at the odd places.
        parts = QUOTED_STRING.split(statement.replace("%", "%%"))
        return "".join(
            part if index % 2 else part.replace("?", self.placeholder) for index, part in enumerate(parts)
        )


SQLITE = Dialect(
    "sqlite", "?", "INTEGER PRIMARY KEY AUTOINCREMENT", "INSERT OR IGNORE", False,
    "((julianday('now') - 2440587.5) * 86400.0)",
)
POSTGRESQL = Dialect(
    "postgresql", "%s", "BIGSERIAL PRIMARY KEY", "INSERT", True,  # with ON CONFLICT DO NOTHING
    "EXTRACT(EPOCH FROM clock_timestamp())",
)
MYSQL = Dialect(
    "mysql", "%s", "BIGINT AUTO_INCREMENT PRIMARY KEY", "INSERT IGNORE", True, "UNIX_TIMESTAMP(NOW(6))",
)


class DatabaseURLError(ValueError):
    pass


def import_driver(url: str) -> None:
    """Import the driver of `url`'s database now. `connect` imports it when it first connects, so
    that only the driver a site uses need be installed; in a process that forks (RQ's job worker)
    each child would import it again, once per job."""
    scheme = url.split(":", 1)[0]
    if scheme in ("postgresql", "postgres"):
        import psycopg  # noqa: F401
    elif scheme in ("mysql", "mariadb"):
        import pymysql  # noqa: F401


def connect(url: str, timeout: float):
    """A DB-API connection for `sqlite:///path`, `postgresql://...` or `mysql://...`, and its dialect.

    Rows come back as mappings (`row["id"]`) from all three. No wait takes longer than `timeout`
    seconds: connecting, a lock another connection holds, a statement, an answer.
    """
    scheme = url.split(":", 1)[0]
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)  # we BEGIN ourselves
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        return conn, SQLITE
    if scheme in ("postgresql", "postgres"):
        import psycopg
        from psycopg.rows import dict_row

        limit = f"-c statement_timeout={ms(timeout)} -c lock_timeout={ms(timeout)}"
        conn = psycopg.connect(
            url, row_factory=dict_row, autocommit=True, connect_timeout=max(2, math.ceil(timeout)), options=limit,
        )  # libpq waits at least 2 s to connect
        return conn, POSTGRESQL
    if scheme in ("mysql", "mariadb"):
        import pymysql

        parts = urlparse(url)
        conn = pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/"),
            charset="utf8mb4",
            cursorclass=pymysql.cursors.DictCursor,
            autocommit=True,
            # PyMySQL counts whole seconds; a lock wait ends with the read timeout.
            connect_timeout=math.ceil(timeout),
            read_timeout=math.ceil(timeout),
            write_timeout=math.ceil(timeout),
        )
        return conn, MYSQL
    raise DatabaseURLError(f"unsupported database URL {url!r}: use sqlite:///, postgresql:// or mysql://")


def longest_wait(url: str, timeout: float) -> float:
    """How long one wait of `connect(url, timeout)` may really take: PyMySQL counts whole seconds,
    and libpq waits at least 2 s to connect."""
    scheme = url.split(":", 1)[0]
    if scheme in ("postgresql", "postgres"):
        return max(2, math.ceil(timeout))
    if scheme in ("mysql", "mariadb"):
        return math.ceil(timeout)
    return timeout


def ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
