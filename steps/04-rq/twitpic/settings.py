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
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6380/0"),
        # Only signs the cookie that remembers which demo user you picked; there are no passwords.
        "SECRET_KEY": os.environ.get("TWITPIC_SECRET_KEY", "demo-only-not-a-secret"),
        # The workbook's time scale: 0.01 runs every delay of the story 100 times faster.
        "TIME_SCALE": float(os.environ.get("WORKBOOK_TIME_SCALE") or 1),
    }
