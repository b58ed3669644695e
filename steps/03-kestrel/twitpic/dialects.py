"""The one place that knows how SQLite, PostgreSQL and MariaDB/MySQL differ.

Everything else in the app writes plain SQL with `?` placeholders.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

SQLITE_BUSY_TIMEOUT = 10.0  # seconds a statement waits for another connection's write lock

QUOTED_STRING = re.compile(r"('(?:[^']|'')*')")  # '...', where '' is a quote inside


@dataclass(frozen=True)
class Dialect:
    name: str
    placeholder: str  # what `?` becomes
    id_column: str  # an auto-incrementing primary key
    insert_ignore: str  # INSERT that skips rows whose key exists
    skip_locked: bool  # supports SELECT ... FOR UPDATE SKIP LOCKED

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


SQLITE = Dialect("sqlite", "?", "INTEGER PRIMARY KEY AUTOINCREMENT", "INSERT OR IGNORE", False)
POSTGRESQL = Dialect(
    "postgresql", "%s", "BIGSERIAL PRIMARY KEY", "INSERT", True,  # with ON CONFLICT DO NOTHING
)
MYSQL = Dialect("mysql", "%s", "BIGINT AUTO_INCREMENT PRIMARY KEY", "INSERT IGNORE", True)


class DatabaseURLError(ValueError):
    pass


def connect(url: str):
    """A DB-API connection for `sqlite:///path`, `postgresql://...` or `mysql://...`, and its dialect.

    Rows come back as mappings (`row["id"]`) from all three.
    """
    scheme = url.split(":", 1)[0]
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None)  # we BEGIN ourselves
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        return conn, SQLITE
    if scheme in ("postgresql", "postgres"):
        import psycopg
        from psycopg.rows import dict_row

        return psycopg.connect(url, row_factory=dict_row, autocommit=True), POSTGRESQL
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
        )
        return conn, MYSQL
    raise DatabaseURLError(f"unsupported database URL {url!r}: use sqlite:///, postgresql:// or mysql://")
