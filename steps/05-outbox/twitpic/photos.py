"""The site's pages: recent photos, upload, a photo with its comments, and commenting."""

import uuid
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)

from .db import get_db
from .images import sniff
from .outbox import add_tweet
from .tweets import MAX_TWEET_LENGTH, comment_tweet, photo_tweet

bp = Blueprint("photos", __name__)

MAX_CAPTION_LENGTH = MAX_TWEET_LENGTH
MAX_COMMENT_LENGTH = MAX_TWEET_LENGTH


def demo_users() -> list[str]:
    return [row["username"] for row in get_db().all("SELECT username FROM users ORDER BY username")]


def chosen_user() -> dict:
    """The demo user named in the form: there are no passwords, you pick who you are."""
    username = request.form.get("user", "")
    user = get_db().one("SELECT * FROM users WHERE username = ?", (username,))
    if user is None:
        abort(400, f"Unknown user {username!r}: pick one of the demo users.")
    session["user"] = username  # remembered for the next form
    return user


def get_photo(photo_id: int):
    photo = get_db().one("SELECT * FROM photos WHERE id = ?", (photo_id,))
    if photo is None:
        abort(404, f"There is no photo {photo_id}.")
    return photo


@bp.get("/")
def index():
    photos = get_db().all(
        "SELECT photos.id, photos.username, photos.caption, COUNT(comments.id) AS comment_count"
        " FROM photos LEFT JOIN comments ON comments.photo_id = photos.id"
        " GROUP BY photos.id, photos.username, photos.caption ORDER BY photos.id DESC LIMIT 30"
    )
    return render_template("index.html", photos=photos)


@bp.get("/upload")
def upload_form():
    return render_template("upload.html", users=demo_users())


# --8<-- [start:upload]
@bp.post("/upload")
def upload():
    user = chosen_user()
    caption = request.form.get("caption", "").strip()
    if len(caption) > MAX_CAPTION_LENGTH:
        abort(400, f"The caption is {len(caption)} characters; the limit is {MAX_CAPTION_LENGTH}.")
    photo = request.files.get("photo")
    if photo is None or not photo.filename:
        abort(400, "Choose a photo to upload.")
    data = photo.read(current_app.config["MAX_PHOTO_BYTES"] + 1)
    if len(data) > current_app.config["MAX_PHOTO_BYTES"]:
        abort(413, f"The photo is over {current_app.config['MAX_PHOTO_BYTES'] // 1024 // 1024} MiB.")
    kind = sniff(data)
    if kind is None:
        abort(415, "That file is not a JPEG, PNG or GIF image.")

    tweet = bool(request.form.get("tweet"))
    photo_id = save_photo(user["username"], caption, data, *kind, tweet=tweet)
    return redirect(url_for("photos.show", photo_id=photo_id), code=303)
# --8<-- [end:upload]


def save_photo(
    username: str, caption: str, data: bytes, extension: str, content_type: str, tweet: bool
) -> int:
    filename = f"{uuid.uuid4().hex}.{extension}"
    path = Path(current_app.config["PHOTO_DIR"]) / filename
    path.write_bytes(data)
    try:
        db = get_db()
        with db.transaction():  # the photo and its tweet in the outbox: both saved, or neither
            photo_id = db.insert(
                "INSERT INTO photos (username, caption, filename, content_type) VALUES (?, ?, ?, ?)",
                (username, caption, filename, content_type),
            )
            if tweet:
                link = url_for("photos.show", photo_id=photo_id, _external=True)
                add_tweet(db, f"photo-{photo_id}", username, photo_tweet(caption, link))
        return photo_id
    except Exception:
        path.unlink(missing_ok=True)  # no row, no file
        raise


@bp.get("/photos/<int:photo_id>")
def show(photo_id: int):
    photo = get_photo(photo_id)
    comments = get_db().all("SELECT * FROM comments WHERE photo_id = ? ORDER BY id", (photo_id,))
    return render_template("photo.html", photo=photo, comments=comments, users=demo_users())


@bp.get("/photos/<int:photo_id>/file")
def photo_file(photo_id: int):
    photo = get_photo(photo_id)
    return send_from_directory(
        current_app.config["PHOTO_DIR"], photo["filename"], mimetype=photo["content_type"]
    )


# --8<-- [start:comment]
@bp.post("/photos/<int:photo_id>/comments")
def comment(photo_id: int):
    photo = get_photo(photo_id)
    user = chosen_user()
    body = request.form.get("body", "").strip()
    if not body:
        abort(400, "The comment is empty.")
    if len(body) > MAX_COMMENT_LENGTH:
        abort(400, f"The comment is {len(body)} characters; the limit is {MAX_COMMENT_LENGTH}.")

    db = get_db()
    with db.transaction():  # the comment and its tweet in the outbox: both saved, or neither
        comment_id = db.insert(
            "INSERT INTO comments (photo_id, username, body) VALUES (?, ?, ?)",
            (photo["id"], user["username"], body),
        )
        if request.form.get("tweet"):
            link = url_for("photos.show", photo_id=photo_id, _external=True)
            add_tweet(db, f"comment-{comment_id}", user["username"], comment_tweet(body, link))
    return redirect(url_for("photos.show", photo_id=photo_id, _anchor=f"comment-{comment_id}"), code=303)
# --8<-- [end:comment]
