"""Headless Chromium for the browser check: find it, serve a folder to it, watch a page for trouble.

The check drives the system's own Chromium (Debian's `chromium` package, Homebrew's on macOS)
through the Python `playwright` package. `playwright install` is never needed: it would download
a browser build of its own, and the site must work where only package registries are reachable.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from lab.runtime.process import LOCALHOST

CHROMIUM_ENV = "WORKBOOK_CHROMIUM"  # the browser's path, when it is not found by name
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MACOS_APPS = (
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)
INSTALL_HINT = (
    "install it (Debian/Ubuntu: sudo apt-get install chromium; macOS: brew install --cask chromium) "
    f"or set {CHROMIUM_ENV}=/path/to/chromium"
)
LOCAL_HOSTS = {LOCALHOST, "localhost"}


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) to run headless, or None."""
    if os.environ.get(CHROMIUM_ENV):
        return os.environ[CHROMIUM_ENV]
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return next((app for app in MACOS_APPS if Path(app).is_file()), None)


def is_local(url: str) -> bool:
    """True for this machine's addresses, and for URLs that never touch the network (data:, blob:)."""
    parts = urlsplit(url)
    return parts.scheme not in ("http", "https", "ws", "wss") or parts.hostname in LOCAL_HOSTS


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the default writes every request to stderr
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a browser that drops a connection it no longer needs is not an error of the site


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on 127.0.0.1 and a port the OS picks, from a thread; its base URL."""
    server = _QuietServer((LOCALHOST, 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, name="serve_folder", daemon=True)
    thread.start()
    try:
        yield f"http://{LOCALHOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class PageWatcher:
    """Everything that goes wrong on one browser page, as readable lines in `problems`.

    Console errors, uncaught exceptions, failed requests and error responses are recorded. So is
    any request that tries to leave this machine, and it is stopped: the site must work offline,
    so a page that needs a CDN fails here even on a laptop that is online.
    """

    def __init__(self, page) -> None:
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught error: {error}"))
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)
        page.route(lambda url: not is_local(url), self._stop_remote)

    def _console(self, message) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    def _request_failed(self, request) -> None:
        if request.resource_type == "eventsource" and request.failure == "net::ERR_ABORTED":
            return  # a stream of server-sent events the page closed itself, once it had all it needed
        if is_local(request.url):  # a stopped remote request is reported once, by _stop_remote
            self.problems.append(f"request failed: {request.url} ({request.failure})")

    def _response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def _stop_remote(self, route) -> None:
        self.problems.append(f"tried to leave this machine: {route.request.url}")
        route.abort("internetdisconnected")
