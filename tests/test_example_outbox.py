"""The outbox example that chapter 05 includes: nothing lost while the queue is down, a relay's
repeat recognised by its key, and the committed output is what the example prints today."""

import runpy
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "outbox.py"


def test_the_outbox_output_in_the_docs_is_fresh():
    fresh = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    committed = (ROOT / "docs" / "generated" / "outbox.txt").read_text()
    assert fresh == committed, "stale: run python examples/outbox.py > docs/generated/outbox.txt"


def test_the_relay_sends_twice_and_the_worker_posts_once(tmp_path):
    story = runpy.run_path(str(EXAMPLE))["story"]
    lines = story(tmp_path)
    assert "relay: queue unreachable (ConnectionRefusedError); unsent messages: 1" in lines
    assert "relay: died after sending, before marking it sent; unsent messages: 1" in lines
    assert [line for line in lines if line.startswith("worker: ")] == [
        "worker: comment-1: posted",  # the message, sent by the relay that died...
        "worker: comment-1: a repeat, ignored",  # ...and again by the next run: recognised
    ]
    assert lines[-1] == "posted: ['comment-1']"


def test_a_failed_save_leaves_no_message_behind(tmp_path):
    example = runpy.run_path(str(EXAMPLE))
    with closing(sqlite3.connect(tmp_path / "site.sqlite3")) as db:
        db.executescript(example["SCHEMA"] + "CREATE TRIGGER no_outbox BEFORE INSERT ON outbox "
                         "BEGIN SELECT RAISE(ABORT, 'the outbox insert failed'); END;")
        with pytest.raises(sqlite3.IntegrityError, match="the outbox insert failed"):
            example["save_comment"](db, "never saved")
        assert db.execute("SELECT COUNT(*) FROM comments").fetchone()[0] == 0  # rolled back with it
