"""Twitpic, stage 05: each tweet is saved in an outbox with its comment; a relay queues it as an
RQ job on Redis; RQ workers post them."""

from pathlib import Path

from flask import Flask

from . import db, errors, photos, queue, status
from .settings import settings_from_environment


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(settings_from_environment())
    if config:
        app.config.update(config)
    Path(app.config["PHOTO_DIR"]).mkdir(parents=True, exist_ok=True)

    db.init_app(app)
    queue.init_app(app)
    errors.init_app(app)
    app.register_blueprint(photos.bp)
    app.register_blueprint(status.bp)
    return app
