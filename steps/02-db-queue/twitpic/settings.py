"""The app's and the worker's settings, from the environment (what the Procfile and the tests set)."""

import os
from pathlib import Path

STAGE_DIR = Path(__file__).resolve().parent.parent


def settings_from_environment() -> dict:
    data_dir = Path(os.environ.get("TWITPIC_DATA_DIR", STAGE_DIR / "data")).resolve()
    max_photo = int(os.environ.get("TWITPIC_MAX_PHOTO_BYTES", 5 * 1024 * 1024))
    return {
        # SQLite in the data folder unless a postgresql:// or mysql:// URL says otherwise.
        "DATABASE_URL": os.environ.get("TWITPIC_DATABASE_URL") or f"sqlite:///{data_dir / 'twitpic.sqlite3'}",
        "PHOTO_DIR": str(data_dir / "photos"),
        "MAX_PHOTO_BYTES": max_photo,
        # Room for the form's other fields; a larger body is refused before it is read.
        "MAX_CONTENT_LENGTH": max_photo + 64 * 1024,
        "TWITTER_API_URL": os.environ.get("TWITTER_API_URL", "http://127.0.0.1:8081").rstrip("/"),
        # Only signs the cookie that remembers which demo user you picked; there are no passwords.
        "SECRET_KEY": os.environ.get("TWITPIC_SECRET_KEY", "demo-only-not-a-secret"),
        # The job workers' durations, in seconds; each command-line option of the worker can override one.
        "TWITTER_TIMEOUT": float(os.environ.get("TWITPIC_TWITTER_TIMEOUT", 10)),  # a hung Twitter gives up here
        "LEASE": float(os.environ.get("TWITPIC_LEASE", 30)),  # how long a claim lasts; 0: claims never run out
        "POLL": float(os.environ.get("TWITPIC_POLL", 0.5)),  # between looks at an empty table
        # Retries: the first about this long after a failure, each next one twice as long, up to the cap.
        "RETRY_FIRST": float(os.environ.get("TWITPIC_RETRY_FIRST", 1)),
        "RETRY_CAP": float(os.environ.get("TWITPIC_RETRY_CAP", 60)),
    }
