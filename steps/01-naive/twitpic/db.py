"""The site's SQLite database: one connection per request, plain SQL.

Connections run in autocommit mode; `transaction()` groups statements that must be saved together.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from flask import Flask, current_app, g

WAL_ATTEMPTS = 100  # 50 ms apart: five seconds for the processes starting beside this one


class Database:
    def __init__(self, path: str):
        self.conn = sqlite3.connect(path, timeout=10, isolation_level=None)  # we BEGIN ourselves
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys = ON")

    def execute(self, statement: str, params: tuple = ()):
        return self.conn.execute(statement, params)

    def one(self, statement: str, params: tuple = ()):
        return self.execute(statement, params).fetchone()

    def all(self, statement: str, params: tuple = ()) -> list:
        return self.execute(statement, params).fetchall()

    def insert(self, statement: str, params: tuple = ()) -> int:
        """Run an INSERT and return the new row's id."""
        return self.execute(statement, params).lastrowid

    @contextmanager
    def transaction(self, begin: str = "BEGIN"):
        self.execute(begin)
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
        g.db = Database(current_app.config["DATABASE"])
    return g.db


def close_db(exception=None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


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


def init_db(path: str) -> None:
    """Create the tables and the demo users; safe to run from every process at once."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = Database(path)
    try:
        switch_to_wal(db)
        schema = (Path(__file__).parent / "schema.sql").read_text()
        with db.transaction("BEGIN IMMEDIATE"):  # one process at a time
            for statement in schema.split(";"):
                if statement.strip():
                    db.execute(statement)
    finally:
        db.close()


def init_app(app: Flask) -> None:
    init_db(app.config["DATABASE"])
    app.teardown_appcontext(close_db)
