"""The fake Twitter API: a real HTTP server with outage modes and a ledger.

Two listeners share one state:
- the API port serves `POST /2/tweets` (shaped like Twitter's API v2) and the control routes;
- the control port serves only the control routes and the page, and stays open in `refuse` mode,
  when the API port really stops accepting connections.

A thread per connection (the standard library's ThreadingHTTPServer) keeps it simple and makes sure
it is never the bottleneck: hundreds of requests can be held in `hang` while the control routes
still answer at once.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .page import render_page
from .state import MAX_TWEET_LENGTH, ControlError, TwitterState

log = logging.getLogger("lab.twitter")

MAX_BODY_BYTES = 64 * 1024
DUPLICATE_CONTENT = "You are not allowed to create a Tweet with duplicate content."

# Every route, with what it does: the reference page includes this table.
# --8<-- [start:routes]
ROUTES = {
    ("POST", "/2/tweets"): "post a tweet (API port only)",
    ("GET", "/"): "the timeline page with buttons for the modes",
    ("GET", "/_control"): "the current mode, latency range, fail rate, time scale",
    ("POST", "/_control"): "change mode, latency_ms, fail_rate, reject_duplicates or retry_after",
    ("GET", "/_ledger"): "every accepted tweet",
    ("GET", "/_stats"): "counts: accepted, duplicates, rejected by reason, received, in flight",
    ("POST", "/_reset"): "clear the ledger and the counts",
    ("GET", "/_users"): "the demo users and their tokens",
}
# --8<-- [end:routes]


def problem(status: HTTPStatus, detail: str) -> tuple[int, dict]:
    """An error body in the shape Twitter's API v2 uses (RFC 7807 style)."""
    return status, {"title": status.phrase, "detail": detail, "status": int(status)}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as `requests` sessions expect
    # Headers and body go out in two writes; with Nagle's algorithm the second waits for the
    # client's delayed ACK, 40 ms on Linux, on every answer of a kept-alive connection.
    disable_nagle_algorithm = True
    server: "_Listener"

    # -- plumbing ---------------------------------------------------------------------------

    def log_message(self, format, *args):  # the default writes every request to stderr
        log.debug("%s %s", self.address_string(), format % args)

    def send_json(self, status: int, body, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(body).encode(), "application/json", headers)

    def send_bytes(
        self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            if getattr(self, "waited_ms", None) is not None:
                self.send_header("X-Latency-Ms", f"{self.waited_ms:.3f}")
                self.waited_ms = None
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout, in `hang`)

    def read_json(self):
        """The request's JSON body, or raise ValueError with a message for the 400."""
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise ValueError("a JSON body with a Content-Length header is required")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body would corrupt the next request
            raise ValueError(f"body over {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(int(length))
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError("body is not valid JSON") from None

    def client_gone(self) -> bool:
        """Has the client closed its end? (Readable with nothing to read means end of stream.)"""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    @property
    def state(self) -> TwitterState:
        return self.server.state

    def route(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/2/tweets" and self.server.serves_api:
            if method == "POST":
                return self.post_tweet()
            return self.send_json(*problem(HTTPStatus.METHOD_NOT_ALLOWED, "use POST"))
        handler = CONTROL_ROUTES.get((method, path))
        if handler is None:
            return self.send_json(*problem(HTTPStatus.NOT_FOUND, f"no route {method} {path}"))
        handler(self)

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    # -- the API ----------------------------------------------------------------------------

    def post_tweet(self) -> None:
        self.state.call_started()
        try:
            self.answer_tweet()
        finally:
            self.state.call_ended()  # answered, refused or dropped: no longer in flight

    # --8<-- [start:post_tweet]
    def answer_tweet(self) -> None:
        # Read the body first, whatever happens next: an unread body would be taken for the
        # next request on this keep-alive connection.
        try:
            text, invalid = _tweet_text(self.read_json()), None
        except ValueError as error:
            text, invalid = None, str(error)

        mode = self.state.wait_out_hang(self.client_gone)
        if mode == "abandoned":
            self.close_connection = True
            return
        if mode == "refuse" or self.state.closing:
            # A connection that was already open when the port closed: drop it, no answer.
            self.state.count_rejection("refuse")
            self.close_connection = True
            return
        latency = self.state.latency_seconds(mode)
        time.sleep(latency)
        self.waited_ms = latency * 1000  # sent back as X-Latency-Ms, so tests can check the draw
        mode = self.state.wait_out_hang(self.client_gone)  # it may have started hanging meanwhile
        if mode == "abandoned":
            self.close_connection = True
            return
        if self.state.fails_now(mode):
            return self.send_json(*problem(HTTPStatus.SERVICE_UNAVAILABLE, "Twitter is over capacity."))
        wait = self.state.rate_limited_for(mode)
        if wait is not None:
            return self.send_json(*problem(HTTPStatus.TOO_MANY_REQUESTS, "Too Many Requests"),
                                  headers={"Retry-After": str(wait)})

        user = self.state.user_for(_bearer_token(self.headers.get("Authorization")))
        if user is None:
            self.state.count_rejection("unauthorized")
            return self.send_json(*problem(HTTPStatus.UNAUTHORIZED, "missing or unknown bearer token"))
        if invalid:
            self.state.count_rejection("invalid")
            return self.send_json(*problem(HTTPStatus.BAD_REQUEST, invalid))

        tweet = self.state.accept(user, text, sender=self.client_address[0])
        if tweet is None:  # Twitter's own answer to a repeated status
            return self.send_json(*problem(HTTPStatus.FORBIDDEN, DUPLICATE_CONTENT))
        log.info("tweet %s by @%s%s: %s", tweet.id, user, " (DUPLICATE)" if tweet.duplicate else "", text)
        self.send_json(HTTPStatus.CREATED, {"data": {"id": tweet.id, "text": tweet.text}})

    # --8<-- [end:post_tweet]

    # -- control ----------------------------------------------------------------------------

    def get_control(self):
        self.send_json(HTTPStatus.OK, self.state.describe())

    def post_control(self):
        try:
            changes = self.read_json()
            if not isinstance(changes, dict):
                raise ControlError("the body must be a JSON object")
            self.send_json(HTTPStatus.OK, self.state.control(changes))
        except ValueError as error:  # ControlError is a ValueError
            self.send_json(*problem(HTTPStatus.BAD_REQUEST, str(error)))

    def get_ledger(self):
        self.send_json(HTTPStatus.OK, {"tweets": self.state.ledger_json()})

    def get_stats(self):
        self.send_json(HTTPStatus.OK, self.state.stats())

    def post_reset(self):
        self.state.reset()
        self.send_json(HTTPStatus.OK, self.state.stats())

    def get_users(self):
        self.send_json(HTTPStatus.OK, {"users": self.state.users_json()})

    def get_page(self):
        self.send_bytes(HTTPStatus.OK, render_page().encode(), "text/html; charset=utf-8")


CONTROL_ROUTES = {
    ("GET", "/"): Handler.get_page,
    ("GET", "/_control"): Handler.get_control,
    ("POST", "/_control"): Handler.post_control,
    ("GET", "/_ledger"): Handler.get_ledger,
    ("GET", "/_stats"): Handler.get_stats,
    ("POST", "/_reset"): Handler.post_reset,
    ("GET", "/_users"): Handler.get_users,
}


def _bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _tweet_text(body) -> str:
    if not isinstance(body, dict) or "text" not in body:
        raise ValueError('the body must be a JSON object with "text"')
    text = body["text"]
    if not isinstance(text, str):
        raise ValueError('"text" must be a string')
    if not text.strip():
        raise ValueError('"text" is empty')
    if len(text) > MAX_TWEET_LENGTH:
        raise ValueError(f'"text" is {len(text)} characters, over the limit of {MAX_TWEET_LENGTH}')
    return text


class _Listener(ThreadingHTTPServer):
    daemon_threads = True  # a request held in `hang` must not keep the process alive
    request_queue_size = 1024  # the default backlog of 5 would refuse connections under load

    def __init__(self, address, state: TwitterState, serves_api: bool):
        self.state = state
        self.serves_api = serves_api
        super().__init__(address, Handler)


class FakeTwitterServer:
    """Both listeners, and the switch that closes the API port in `refuse` mode."""

    def __init__(self, state: TwitterState, host: str, port: int, control_port: int):
        self.state = state
        self.host = host
        self.control = _Listener((host, control_port), state, serves_api=False)
        self.api: _Listener | None = None
        self.port = port
        self._api_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        if state.mode != "refuse":
            self._open_api()
        state.on_mode_change(self._mode_changed)

    @property
    def control_port(self) -> int:
        return self.control.server_address[1]

    def _open_api(self) -> None:
        self.api = _Listener((self.host, self.port), self.state, serves_api=True)
        self.port = self.api.server_address[1]  # the port the OS picked, if 0 was asked
        self._serve(self.api)

    def _close_api(self) -> None:
        api, self.api = self.api, None
        if api is not None:
            api.shutdown()
            api.server_close()

    def _mode_changed(self, old: str, new: str) -> None:
        log.info("mode %s -> %s", old, new)
        with self._api_lock:
            if new == "refuse":
                self._close_api()
            elif self.api is None:
                self._open_api()

    def _serve(self, listener: ThreadingHTTPServer) -> None:
        thread = threading.Thread(target=listener.serve_forever, name="listener", daemon=True)
        thread.start()
        self._threads.append(thread)

    def start(self) -> "FakeTwitterServer":
        """Serve in background threads; `wait()` blocks until `stop()`."""
        self._serve(self.control)
        return self

    def wait(self) -> None:
        self._stopped.wait()

    def stop(self) -> None:
        self.state.close()
        with self._api_lock:
            self._close_api()
        self.control.shutdown()
        self.control.server_close()
        self._stopped.set()
