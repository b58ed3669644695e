"""The site's database: SQLite by default, PostgreSQL or MariaDB by URL; plain SQL.

Connections run in autocommit mode; `transaction()` groups statements, so a comment and its tweet
job are saved together or not at all.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from flask import Flask, current_app, g

from . import dialects

WAL_ATTEMPTS = 100  # 50 ms apart: five seconds for the processes starting beside this one

log = logging.getLogger(__name__)


class Database:
    def __init__(self, url: str):
        self.url = url
        self.conn, self.dialect = dialects.connect(url)

    def execute(self, statement: str, params: tuple = ()):
        cursor = self.conn.cursor()
        cursor.execute(self.dialect.sql(statement), params)
        return cursor

    def one(self, statement: str, params: tuple = ()):
        return self.execute(statement, params).fetchone()

    def all(self, statement: str, params: tuple = ()) -> list:
        return self.execute(statement, params).fetchall()

    def insert(self, statement: str, params: tuple = ()) -> int:
        """Run an INSERT and return the new row's id."""
        if self.dialect is dialects.POSTGRESQL:
            return self.one(statement + " RETURNING id", params)["id"]
        return self.execute(statement, params).lastrowid

    @contextmanager
    def transaction(self, begin: str = "BEGIN", wait: bool = False):
        """With `wait`, a BEGIN that gave up on SQLite's write lock (its busy timeout) asks again,
        for as long as it takes: SQLite's waiting is not fair, and a process can lose the lock to
        the others again and again."""
        while True:
            try:
                self.execute(begin)
                break
            except sqlite3.OperationalError as error:
                if not (wait and "locked" in str(error)):
                    raise
                log.warning("still waiting for the database's write lock")
        try:
            yield self
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def get_db() -> Database:
    if "db" not in g:
        g.db = Database(current_app.config["DATABASE_URL"])
    return g.db


def close_db(exception=None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


DEMO_USERS = [
    ("alice", "demo-token-alice"),
    ("bob", "demo-token-bob"),
    ("carol", "demo-token-carol"),
    ("dave", "demo-token-dave"),
]


def switch_to_wal(db) -> None:
    """Let readers carry on while one process writes (SQLite's write-ahead log).

    Processes that start together on a new file (gunicorn's workers) race to switch it, and SQLite
    tells the loser "database is locked" at once, without waiting out the busy timeout, so the
    loser tries again. The switch is stored in the file: after the first, it changes nothing.
    """
    for _ in range(WAL_ATTEMPTS - 1):
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
            time.sleep(0.05)
    db.execute("PRAGMA journal_mode = WAL")  # the last try: its error, if any, is the answer


def init_db(url: str) -> None:
    """Create the tables and the demo users; safe to run from every process at once."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db = Database(url)
    lock, unlock = db.dialect.schema_lock
    try:
        if db.dialect is dialects.SQLITE:
            switch_to_wal(db)
        db.execute(lock)
        schema = (Path(__file__).parent / "schema.sql").read_text()
        for statement in schema.replace("$ID", db.dialect.id_column).split(";"):
            if statement.strip():
                db.execute(statement)
        conflict = " ON CONFLICT DO NOTHING" if db.dialect is dialects.POSTGRESQL else ""
        for username, token in DEMO_USERS:
            db.execute(
                f"{db.dialect.insert_ignore} INTO users (username, twitter_token) VALUES (?, ?){conflict}",
                (username, token),
            )
        db.execute(unlock)
    finally:
        db.close()


def init_app(app: Flask) -> None:
    init_db(app.config["DATABASE_URL"])
    app.teardown_appcontext(close_db)
