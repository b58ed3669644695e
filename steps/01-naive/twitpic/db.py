"""The site's SQLite database: one connection per request, plain SQL.

Connections run in autocommit mode; `transaction()` groups statements that must be saved together.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path

import click
from flask import Flask, current_app, g


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


def init_db(path: str) -> None:
    """Create the tables and the demo users. Runs once, before the site starts; again, it changes nothing."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = Database(path)
    try:
        # Readers carry on while one process writes (SQLite's write-ahead log); the file keeps it.
        db.execute("PRAGMA journal_mode = WAL")
        schema = (Path(__file__).parent / "schema.sql").read_text()
        with db.transaction():
            for statement in schema.split(";"):
                if statement.strip():
                    db.execute(statement)
    finally:
        db.close()


@click.command("init-db")
def init_db_command() -> None:
    """Create the database's tables and demo users: `flask --app twitpic init-db`, the Procfile's release."""
    init_db(current_app.config["DATABASE"])
    click.echo(f"database ready: {current_app.config['DATABASE']}")


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
    app.cli.add_command(init_db_command)
