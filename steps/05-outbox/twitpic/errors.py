"""Every error is a short page that says what went wrong: never a stack trace."""

from flask import Flask, current_app, render_template
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if isinstance(error, RequestEntityTooLarge) and error.description == RequestEntityTooLarge.description:
            # The whole request was over the limit before the form was even read.
            limit = current_app.config["MAX_PHOTO_BYTES"] // 1024 // 1024
            error.description = f"The upload is over the {limit} MiB limit for a photo."
        return render_template("error.html", error=error), error.code
