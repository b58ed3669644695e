"""The site's database: SQLite by default, PostgreSQL or MariaDB by URL; plain SQL.

Connections run in autocommit mode; `transaction()` groups statements, so a comment and its tweet
job are saved together or not at all.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import click
from flask import Flask, current_app, g

from . import dialects

log = logging.getLogger(__name__)


class Database:
    def __init__(self, url: str, timeout: float):
        self.url = url
        self.conn, self.dialect = dialects.connect(url, timeout)

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
        g.db = Database(current_app.config["DATABASE_URL"], current_app.config["DATABASE_TIMEOUT"])
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


def init_db(url: str, timeout: float) -> None:
    """Create the tables and the demo users. Runs once, before the site and its job workers start;
    again, it changes nothing."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db = Database(url, timeout)
    try:
        if db.dialect is dialects.SQLITE:
            # Readers carry on while one process writes (SQLite's write-ahead log); the file keeps it.
            db.execute("PRAGMA journal_mode = WAL")
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
    finally:
        db.close()


@click.command("init-db")
def init_db_command() -> None:
    """Create the database's tables and demo users: `flask --app twitpic init-db`, the Procfile's release."""
    init_db(current_app.config["DATABASE_URL"], current_app.config["DATABASE_TIMEOUT"])
    click.echo(f"database ready: {current_app.config['DATABASE_URL']}")


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
    app.cli.add_command(init_db_command)
