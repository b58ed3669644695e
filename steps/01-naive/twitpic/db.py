"""The site's SQLite database: one connection per request, plain SQL."""

import sqlite3
from pathlib import Path

from flask import Flask, current_app, g


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10)  # wait for another worker's write, don't fail
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def get_db() -> sqlite3.Connection:
    if "db" not in g:
        g.db = connect(current_app.config["DATABASE"])
    return g.db


def close_db(exception=None) -> None:
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def init_db(path: str) -> None:
    """Create the tables and the demo users; safe to run from every worker at once."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        # WAL lets readers carry on while one worker writes.
        conn.execute("PRAGMA journal_mode = WAL")
        schema = (Path(__file__).parent / "schema.sql").read_text()
        with conn:
            conn.executescript(schema)
    finally:
        conn.close()


def init_app(app: Flask) -> None:
    init_db(app.config["DATABASE"])
    app.teardown_appcontext(close_db)
