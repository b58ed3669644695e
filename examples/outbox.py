"""A transactional outbox against the workbook's queue server: nothing lost, repeats recognised.

    python examples/outbox.py > docs/generated/outbox.txt

The web request saves a comment and its message in one transaction; a relay moves the message to
the queue later; a worker recognises a message it has seen before by its key. The story: the
queue server is down when the comment is saved, then the relay dies between sending and marking
the message sent. Chapter 05 includes the code and what it prints; a test runs this and fails if
the committed output is stale.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from pymemcache.client.base import Client

from lab.runtime.kestrel_server import kestrel_process
from lab.runtime.process import LOCALHOST, free_port

SCHEMA = """
CREATE TABLE comments (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE outbox (id INTEGER PRIMARY KEY, message TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0);
CREATE TABLE posted (key TEXT PRIMARY KEY, text TEXT NOT NULL);
"""
QUEUE = "tweets"


class RelayDied(Exception):
    """Stands for kill -9 of the relay at a chosen moment."""


# --8<-- [start:save]
def save_comment(db: sqlite3.Connection, body: str) -> int:
    """The web request: the comment and its message commit together, or not at all."""
    with db:  # one transaction
        comment_id = db.execute("INSERT INTO comments (body) VALUES (?)", (body,)).lastrowid
        message = {"key": f"comment-{comment_id}", "text": body}  # the key is made here, once
        db.execute("INSERT INTO outbox (message) VALUES (?)", (json.dumps(message),))
    return comment_id
# --8<-- [end:save]


# --8<-- [start:relay]
def relay_once(db: sqlite3.Connection, queue: Client, after_send: Callable[[], None] = lambda: None) -> int:
    """Move every unsent message to the queue, oldest first; how many were moved."""
    rows = db.execute("SELECT id, message FROM outbox WHERE sent = 0 ORDER BY id").fetchall()
    for row_id, message in rows:
        if not queue.set(QUEUE, message.encode()):
            raise RuntimeError("the queue refused the message")  # it stays unsent, for the next run
        after_send()  # a relay that dies here has sent the message but not marked it
        with db:
            db.execute("UPDATE outbox SET sent = 1 WHERE id = ?", (row_id,))
    return len(rows)
# --8<-- [end:relay]


# --8<-- [start:handle]
def handle(db: sqlite3.Connection, raw: bytes) -> str:
    """The worker: its effect is a row in its own database, so the key commits with the effect."""
    message = json.loads(raw)
    with db:
        added = db.execute(
            "INSERT OR IGNORE INTO posted (key, text) VALUES (?, ?)", (message["key"], message["text"])
        ).rowcount
    return f"{message['key']}: " + ("posted" if added else "a repeat, ignored")
# --8<-- [end:handle]


def unsent(db: sqlite3.Connection) -> int:
    return db.execute("SELECT COUNT(*) FROM outbox WHERE sent = 0").fetchone()[0]


def connect(port: int) -> Client:
    return Client((LOCALHOST, port), connect_timeout=2, timeout=5, default_noreply=False)


def died_after_send() -> None:
    raise RelayDied("after sending, before marking it sent")


def story(data_dir: Path) -> list[str]:
    lines = []
    port = free_port()  # the queue server's, started only later
    with closing(sqlite3.connect(data_dir / "site.sqlite3")) as db:
        db.executescript(SCHEMA)

        comment_id = save_comment(db, "hello from the outbox")
        lines.append(f"web: comment {comment_id} saved, the queue server is down; unsent messages: {unsent(db)}")
        try:
            with closing(connect(port)) as queue:
                relay_once(db, queue)
        except OSError as error:
            lines.append(f"relay: queue unreachable ({error.__class__.__name__}); unsent messages: {unsent(db)}")

        with kestrel_process(data_dir / "kestrel", port=port):
            try:
                with closing(connect(port)) as queue:
                    relay_once(db, queue, after_send=died_after_send)
            except RelayDied as error:
                lines.append(f"relay: died {error}; unsent messages: {unsent(db)}")
            with closing(connect(port)) as queue:
                moved = relay_once(db, queue)
                lines.append(f"relay: moved {moved} message; unsent messages: {unsent(db)}")
                while (raw := queue.get(f"{QUEUE}/close/open")) is not None:
                    lines.append(f"worker: {handle(db, raw)}")
                queue.get(f"{QUEUE}/close")
        posted = db.execute("SELECT key FROM posted ORDER BY key").fetchall()
        lines.append(f"posted: {[key for (key,) in posted]}")
    return lines


def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        print("\n".join(story(Path(data_dir))))


if __name__ == "__main__":
    sys.exit(main())
