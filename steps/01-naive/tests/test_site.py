"""The site itself: upload, view, comment, and every kind of bad input, against real gunicorn."""

import re
import sqlite3

import pytest
import requests

from lab.testing.site_client import JPEG_START, TINY_GIF, photo_id_from, tiny_png
from twitpic.db import init_db

MiB = 1024 * 1024


def count(site, table: str) -> int:
    with sqlite3.connect(f"file:{site.data_dir / 'twitpic.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def stored_files(site) -> int:
    return len(list((site.data_dir / "photos").iterdir()))


@pytest.fixture
def nothing_stored(site):
    """Asserts that the test stored no photo, no file and no comment."""
    before = count(site, "photos"), stored_files(site), count(site, "comments")
    yield
    assert (count(site, "photos"), stored_files(site), count(site, "comments")) == before


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
    assert site.upload(tweet=False).status_code == 303
    assert twitter.ledger() == []


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
    assert site.comment(photo, "Just here", tweet=False).status_code == 303
    assert "Just here" in site.photo_page(photo).text
    assert twitter.ledger() == []


def test_a_long_comment_is_shortened_to_fit_in_a_tweet(site, twitter, photo, drain_seconds):
    body = "word " * 56  # 280 characters with the trailing space stripped: 279
    assert site.comment(photo, body).status_code == 303
    found = twitter.tweets_starting_with(["word word"], drain_seconds, idle=site.idle)
    [tweet] = found["word word"]
    assert len(tweet["text"]) <= 280
    assert tweet["text"].endswith(f"… {site.url(f'/photos/{photo}')}")


def test_the_comment_is_saved_and_the_tweet_lost_when_twitter_fails(site, twitter, photo):
    twitter.set_mode("down")
    assert site.comment(photo, "Saved anyway").status_code == 303
    assert "Saved anyway" in site.photo_page(photo).text
    assert twitter.stats()["rejected"] == {"down": 1}
    assert "tweet lost" in site.web.log_text(), "Twitter's 503 left no trace: the log must say the tweet is lost"


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
    init_db(str(database))
    assert {table: count(site, table) for table in tables} == before
    assert requests.get(site.url(f"/photos/{photo}"), timeout=10).status_code == 200
