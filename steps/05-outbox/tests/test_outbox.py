"""The web request's half of the outbox: the comment or photo and its tweet's row are saved in one
transaction, both or neither, and the request never waits on Redis. In the app itself, on SQLite,
with Flask's test client: no Redis runs here at all."""

import io
import sqlite3

import pytest

from lab.testing.site_client import tiny_png


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("TWITPIC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there: Redis is down
    from twitpic import create_app
    from twitpic.db import init_db

    app = create_app()
    init_db(app.config["DATABASE_URL"], app.config["DATABASE_TIMEOUT"])
    app.testing = False  # an error is answered as the site answers it, not raised in the test
    return app


def rows(app, table: str) -> list[dict]:
    with sqlite3.connect(app.config["DATABASE_URL"].removeprefix("sqlite:///")) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(f"SELECT * FROM {table}")]


def new_photo(client) -> int:
    image = (io.BytesIO(tiny_png(1)), "p.png")
    response = client.post("/upload", data={"user": "alice", "caption": "", "photo": image})
    assert response.status_code == 303
    return int(response.headers["Location"].rsplit("/", 1)[1])


def test_a_comment_is_saved_with_its_tweet_while_redis_is_down(app):
    client = app.test_client()
    photo = new_photo(client)

    response = client.post(f"/photos/{photo}/comments", data={"user": "bob", "body": "hello", "tweet": "1"})

    assert response.status_code == 303
    [comment] = rows(app, "comments")
    [staged] = rows(app, "outbox")
    assert staged["tweet_id"] == f"comment-{comment['id']}"
    assert staged["username"] == "bob"
    assert staged["text"].startswith("hello http://localhost/photos/")
    assert staged["sent_at"] is None  # for the relay to queue


def test_a_comment_whose_tweet_cannot_be_staged_is_not_saved_either(app, monkeypatch):
    """The outbox row fails after the comment was written: the transaction takes the comment back
    too. Saved without its row, the comment would lose its tweet, as in stage 04."""
    from twitpic import photos

    def full_disk(*args):
        raise sqlite3.OperationalError("database or disk is full")

    client = app.test_client()
    photo = new_photo(client)
    monkeypatch.setattr(photos, "add_tweet", full_disk)

    response = client.post(f"/photos/{photo}/comments", data={"user": "bob", "body": "hello", "tweet": "1"})

    assert response.status_code == 500, f"the tweet was not staged, and the page answered {response.status_code}"
    assert rows(app, "comments") == [], "the comment was saved without its tweet"
    assert rows(app, "outbox") == []


def test_a_photo_whose_tweet_cannot_be_staged_is_not_saved_either(app, monkeypatch, tmp_path):
    from twitpic import photos

    def full_disk(*args):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(photos, "add_tweet", full_disk)
    client = app.test_client()
    image = (io.BytesIO(tiny_png(1)), "p.png")
    response = client.post("/upload", data={"user": "alice", "caption": "sunset", "tweet": "1", "photo": image})

    assert response.status_code == 500
    assert rows(app, "photos") == []
    assert list((tmp_path / "photos").iterdir()) == []  # no row, no file
