"""The site itself: upload, view, comment, and every kind of bad input, against real gunicorn."""

import re
import sqlite3

import pytest
import requests

from lab.runtime.process import wait_until
from lab.testing.site_client import JPEG_START, TINY_GIF, photo_id_from, tiny_png
from twitpic.db import init_db

MiB = 1024 * 1024


def count(site, table: str) -> int:
    with sqlite3.connect(f"file:{site.data_dir / 'twitpic.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def stored_files(site) -> int:
    return len(list((site.data_dir / "photos").iterdir()))


def last_job(site) -> dict:
    with sqlite3.connect(f"file:{site.data_dir / 'twitpic.sqlite3'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM tweet_jobs ORDER BY id DESC LIMIT 1").fetchone())


@pytest.fixture
def nothing_stored(site):
    """Asserts that the test stored no photo, no file, no comment and no tweet job."""
    before = count(site, "photos"), stored_files(site), count(site, "comments"), count(site, "tweet_jobs")
    yield
    after = (count(site, "photos"), stored_files(site), count(site, "comments"), count(site, "tweet_jobs"))
    assert after == before


# -- the happy path ------------------------------------------------------------------------


def test_upload_with_a_tweet(site, twitter, drain_seconds):
    response = site.upload(tiny_png(1), user="alice", caption="Sunset over the bay")

    assert response.status_code == 303, f"a PNG upload answered {response.status_code}"
    photo_id = photo_id_from(response)
    page = site.photo_page(photo_id)
    assert page.status_code == 200
    assert "Sunset over the bay" in page.text and "@alice" in page.text
    found = twitter.tweets_starting_with(["Sunset over the bay"], drain_seconds, idle=site.idle)
    [tweet] = found["Sunset over the bay"]
    assert tweet["user"] == "alice"
    assert tweet["text"] == f"Sunset over the bay {site.url(f'/photos/{photo_id}')}"


def test_upload_without_a_tweet_posts_nothing(site, twitter):
    jobs = count(site, "tweet_jobs")
    assert site.upload(tweet=False).status_code == 303
    assert count(site, "tweet_jobs") == jobs  # no job, so nothing will ever be posted


@pytest.mark.parametrize(
    "image, filename, content_type",
    [
        (tiny_png(2), "holiday.gif", "image/png"),
        (TINY_GIF, "x.png", "image/gif"),
        (TINY_GIF.replace(b"GIF89a", b"GIF87a", 1), "old.jpg", "image/gif"),  # the older GIF
        (JPEG_START, "a.txt", "image/jpeg"),
    ],
    ids=["png", "gif", "gif87a", "jpeg"],
)
def test_the_type_comes_from_the_content_not_the_name(site, twitter, image, filename, content_type):
    response = site.upload(image, filename=filename, tweet=False)
    assert response.status_code == 303, f"an upload named {filename} answered {response.status_code}"
    photo_id = photo_id_from(response)

    served = site.photo_page(photo_id)
    file = requests.get(site.url(f"/photos/{photo_id}/file"), timeout=10)
    assert served.status_code == 200
    assert file.headers["Content-Type"] == content_type, f"{filename} was taken for {file.headers['Content-Type']}"
    assert file.content == image


def test_the_home_page_lists_recent_photos(site, twitter):
    photo_id = site.new_photo(caption="On the home page")
    home = site.home()
    assert home.status_code == 200
    assert "On the home page" in home.text
    assert f"/photos/{photo_id}" in home.text


def test_a_comment_with_a_tweet(site, twitter, photo, drain_seconds):
    response = site.comment(photo, "Lovely colours", user="carol")

    assert response.status_code == 303
    assert re.search(rf"/photos/{photo}#comment-\d+$", response.headers["Location"])
    assert "Lovely colours" in site.photo_page(photo).text
    found = twitter.tweets_starting_with(["Lovely colours"], drain_seconds, idle=site.idle)
    [tweet] = found["Lovely colours"]
    assert tweet["user"] == "carol"
    assert tweet["text"] == f"Lovely colours {site.url(f'/photos/{photo}')}"


def test_a_comment_without_a_tweet(site, twitter, photo):
    jobs = count(site, "tweet_jobs")
    assert site.comment(photo, "Just here", tweet=False).status_code == 303
    assert "Just here" in site.photo_page(photo).text
    assert count(site, "tweet_jobs") == jobs  # no job, so nothing will ever be posted


def test_a_long_comment_is_shortened_to_fit_in_a_tweet(site, twitter, photo, drain_seconds):
    body = "word " * 56  # 280 characters with the trailing space stripped: 279
    assert site.comment(photo, body).status_code == 303
    found = twitter.tweets_starting_with(["word word"], drain_seconds, idle=site.idle)
    [tweet] = found["word word"]
    assert len(tweet["text"]) <= 280
    assert tweet["text"].endswith(f"… {site.url(f'/photos/{photo}')}")


def test_a_comment_whose_job_cannot_be_saved_is_not_saved_either(site, twitter, photo):
    """The comment and its job are one transaction: if the job's insert fails, so does the comment."""
    comments, jobs = count(site, "comments"), count(site, "tweet_jobs")
    with sqlite3.connect(site.data_dir / "twitpic.sqlite3") as db:
        db.execute(
            "CREATE TRIGGER refuse_jobs BEFORE INSERT ON tweet_jobs BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    try:
        response = site.comment(photo, "All or nothing")
    finally:
        with sqlite3.connect(site.data_dir / "twitpic.sqlite3") as db:
            db.execute("DROP TRIGGER refuse_jobs")

    assert response.status_code == 500
    assert "Traceback" not in response.text
    assert (count(site, "comments"), count(site, "tweet_jobs")) == (comments, jobs)
    assert "All or nothing" not in site.photo_page(photo).text


def test_the_comment_is_saved_and_the_tweet_waits_while_twitter_fails(site, twitter, photo, drain_seconds):
    twitter.set_mode("down")
    assert site.comment(photo, "Saved anyway").status_code == 303
    assert "Saved anyway" in site.photo_page(photo).text
    wait_until(lambda: twitter.stats()["rejected"].get("down", 0) >= 2, timeout=10, what="two tries")

    twitter.set_mode("up")
    found = twitter.tweets_starting_with(["Saved anyway"], seconds=drain_seconds, idle=site.idle)
    assert len(found["Saved anyway"]) == 1
    job = last_job(site)
    assert job["status"] == "done" and job["attempts"] >= 3  # two failed tries at least, then posted
    assert job["last_error"] == "Twitter answered 503"


def test_the_chosen_user_is_remembered_for_the_next_form(site, twitter, photo):
    with requests.Session() as browser:
        browser.post(site.url(f"/photos/{photo}/comments"), data={"user": "dave", "body": "hi"}, timeout=10)
        page = browser.get(site.url(f"/photos/{photo}"), timeout=10).text
    assert 'value="dave" selected' in page


# -- bad input: a clear 4xx page, nothing stored, no stack trace ---------------------------


def assert_clear_error(response, status: int, message: str) -> None:
    assert response.status_code == status, f"answered {response.status_code}, not {status}"
    assert message in response.text
    assert "Traceback" not in response.text


def test_a_file_that_is_not_an_image_is_415(site, twitter, nothing_stored):
    response = site.upload(b"#!/bin/sh\necho not a picture\n", filename="cat.png")
    assert_clear_error(response, 415, "not a JPEG, PNG or GIF")
    assert twitter.ledger() == []


def test_a_photo_over_5_mib_is_413(site, twitter, nothing_stored):
    image = tiny_png() + b"\0" * (5 * MiB)  # a valid signature, one file too large
    assert_clear_error(site.upload(image), 413, "over 5 MiB")


def test_an_upload_far_over_the_limit_is_413_before_it_is_read(site, twitter, nothing_stored):
    assert_clear_error(site.upload(tiny_png() + b"\0" * (8 * MiB)), 413, "over the 5 MiB limit")


def test_an_upload_without_a_photo_is_400(site, twitter, nothing_stored):
    response = requests.post(site.url("/upload"), data={"user": "alice", "caption": "no file"}, timeout=10)
    assert_clear_error(response, 400, "Choose a photo")


def test_an_empty_file_is_415(site, twitter, nothing_stored):
    assert_clear_error(site.upload(b""), 415, "not a JPEG, PNG or GIF")


def test_a_caption_over_280_characters_is_400(site, twitter, nothing_stored):
    assert_clear_error(site.upload(caption="x" * 281), 400, "the limit is 280")


@pytest.mark.parametrize("user", ["mallory", ""])
def test_an_unknown_user_is_400(site, twitter, photo, nothing_stored, user):
    assert_clear_error(site.upload(user=user), 400, "Unknown user")
    assert_clear_error(site.comment(photo, "hi", user=user), 400, "Unknown user")


@pytest.mark.parametrize("body, message", [("", "empty"), ("   \n ", "empty"), ("x" * 281, "the limit is 280")])
def test_a_bad_comment_is_400(site, twitter, photo, nothing_stored, body, message):
    assert_clear_error(site.comment(photo, body), 400, message)
    assert twitter.ledger() == []


def test_a_comment_of_exactly_280_characters_is_saved(site, twitter, photo):
    assert site.comment(photo, "y" * 280, tweet=False).status_code == 303


def test_a_comment_on_a_missing_photo_is_404(site, twitter, nothing_stored):
    assert_clear_error(site.comment(999_999, "anyone there?"), 404, "There is no photo 999999")


@pytest.mark.parametrize("path", ["/photos/999999", "/photos/999999/file", "/nowhere", "/photos/abc"])
def test_missing_pages_are_404(site, path):
    assert_clear_error(requests.get(site.url(path), timeout=10), 404, "Not Found")


def test_init_db_again_keeps_what_the_site_holds(site):
    """`workbook up` runs the Procfile's release, `flask --app twitpic init-db`, at every start."""
    photo = site.new_photo()
    tables = ("users", "photos", "comments")
    before = {table: count(site, table) for table in tables}
    database = site.data_dir / "twitpic.sqlite3"
    init_db(f"sqlite:///{database}")
    assert {table: count(site, table) for table in tables} == before
    assert requests.get(site.url(f"/photos/{photo}"), timeout=10).status_code == 200
