"""`workbook drill --live`: the drill's samples, streamed to a browser as they happen.

`LiveFeed` is a watcher of the drill (board.py) and a small HTTP server on 127.0.0.1:

- `/` is the page (live.html), with the viewer the site's results page replays runs in;
- `/events` is the drill so far as server-sent events, then each new event as it happens, so a
  page opened late still gets the whole story.

Events: `drill` (the run's settings and stages), `say` (a stage between samples), `sample`,
`stage_done` (the stage's whole record, as results.json holds it) and `end`. When the drill ends
the server sends `end` to every page, lets them read it, and stops.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
from pathlib import Path

from lab.drill.board import Sample
from lab.runtime.process import LOCALHOST

PAGE = Path(__file__).with_name("live.html")
ASSETS = Path(__file__).resolve().parents[2] / "docs" / "assets"
FILES = {  # URL path -> (file, content type)
    "/": (PAGE, "text/html; charset=utf-8"),
    "/assets/drill-viewer.js": (ASSETS / "javascripts" / "drill-viewer.js", "text/javascript; charset=utf-8"),
    "/assets/drill-viewer.css": (ASSETS / "css" / "drill-viewer.css", "text/css; charset=utf-8"),
}
KEEPALIVE_SECONDS = 10.0  # a comment line this often, so a page notices a server that went away
STAGE_RECORD = ("summary", "requests", "backlog", "slots", "phases", "drained_at")  # what the viewer draws
GOODBYE_SECONDS = 3.0  # at most this long for open pages to read `end` before the server stops


class LiveFeed:
    def __init__(self, host: str = LOCALHOST, port: int = 0):
        self.events: list[str] = []  # each one ready to send
        self.changed = threading.Condition()
        self.ended = False
        self.streams_open = 0
        self.server = _Server((host, port), _Handler)
        self.server.feed = self
        self.thread = threading.Thread(target=self.server.serve_forever, name="drill-live", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def publish(self, kind: str, data: dict) -> None:
        event = f"id: {len(self.events)}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    # -- the drill's watcher calls (board.py) --

    def start_drill(self, header: dict, stage_names: list[str]) -> None:
        self.publish("drill", {**header, "stage_names": stage_names})

    def say(self, stage: str, text: str) -> None:
        self.publish("say", {"stage": stage, "text": text})

    def sample(self, stage: str, sample: Sample) -> None:
        self.publish("sample", {"stage": stage, **dataclasses.asdict(sample)})

    def stage_done(self, stage: str, outcome: dict) -> None:
        record = {key: outcome.get(key) for key in STAGE_RECORD}
        self.publish("stage_done", {"stage": stage, "outcome": record})

    def end(self, out: str) -> None:
        """Tell every page the drill is over, give them a moment to read it, and stop serving."""
        self.publish("end", {"out": out})
        with self.changed:
            self.ended = True
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.streams_open == 0, timeout=GOODBYE_SECONDS)
        self.stop()

    def stop(self) -> None:
        with self.changed:
            self.ended = True
            self.changed.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    # -- one page's stream --

    def stream(self, write) -> None:
        """Every event so far, then each new one, until the drill ends or the page goes."""
        sent = 0
        with self.changed:
            self.streams_open += 1
        try:
            while True:
                with self.changed:
                    news = lambda: len(self.events) > sent or self.ended  # noqa: E731, B023 (read at once)
                    self.changed.wait_for(news, timeout=KEEPALIVE_SECONDS)
                    waiting, finished = self.events[sent:], self.ended
                if waiting:
                    write("".join(waiting).encode())
                    sent += len(waiting)
                elif finished:
                    return
                else:
                    write(b": still here\n\n")
        finally:
            with self.changed:
                self.streams_open -= 1
                self.changed.notify_all()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    feed: LiveFeed

    def handle_error(self, request, client_address):
        pass  # a page closed mid-stream is not an error of the drill


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format, *args):  # the drill's terminal is the trainer's: keep it clean
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/events":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()

            def write(data: bytes) -> None:
                self.wfile.write(data)
                self.wfile.flush()

            try:
                self.server.feed.stream(write)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the page was closed
            self.close_connection = True
        elif path in FILES:
            file, content_type = FILES[path]
            body = file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404, "the live drill serves /, /events and the viewer's two files")

