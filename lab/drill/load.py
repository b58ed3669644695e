"""The drill's load: page views, comments and uploads at fixed rates, each request recorded.

Every request gets its own thread from a large pool, so a slow site cannot slow the load down:
requests keep arriving at the same rate, as real visitors do.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from lab.testing.site_client import SiteClient, tiny_png

CLIENT_TIMEOUT = 5.0  # seconds a visitor waits before giving up


def rates(time_scale: float) -> dict[str, float]:
    """Requests per second. Comments and uploads each cost a call to Twitter, so they come faster
    when the story runs faster: the site is as busy, relative to Twitter's latency, at any speed.
    Page views never touch Twitter; they only measure whether the site answers."""
    return {"view": 10.0, "comment": 1.0 / time_scale, "upload": 0.25 / time_scale}


@dataclass
class Request:
    kind: str
    start: float  # seconds since the load began
    latency: float | None = None  # None: no answer within the client's timeout
    outcome: str = "pending"  # ok, error or timeout
    tweet: str | None = None  # the text asked for, for comments and uploads

    def as_json(self) -> dict:
        return {"kind": self.kind, "start": round(self.start, 4), "outcome": self.outcome,
                "latency": None if self.latency is None else round(self.latency, 4)}


class Load:
    def __init__(self, site: SiteClient, photo_id: int, label: str, rates: dict[str, float]):
        self.site = site
        self.photo_id = photo_id
        self.label = label  # makes every tweet text unique across stages and runs
        self.rates = rates
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=256, thread_name_prefix="visitor")
        self._threads: list[threading.Thread] = []
        self._listed = 0  # requests moved into `_unanswered` so far
        self._unanswered: list[Request] = []  # as of the last `newly_answered` call
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        for kind, rate in self.rates.items():
            thread = threading.Thread(target=self._arrivals, args=(kind, rate), daemon=True)
            thread.start()
            self._threads.append(thread)

    def now(self) -> float:
        return time.monotonic() - self.started

    def _arrivals(self, kind: str, rate: float) -> None:
        number = 0
        while not self._stop.is_set():
            due = self.started + number / rate
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            request = Request(kind, self.now())
            if kind != "view":
                request.tweet = f"drill {self.label} {kind} {number}"
            with self._lock:
                self.requests.append(request)
            self._pool.submit(self._send, request, number)
            number += 1

    def _send(self, request: Request, number: int) -> None:
        began = time.monotonic()
        try:
            if request.kind == "view":
                response = self.site.home(timeout=CLIENT_TIMEOUT)
                ok = response.status_code == 200
            elif request.kind == "comment":
                response = self.site.comment(self.photo_id, request.tweet, timeout=CLIENT_TIMEOUT)
                ok = response.status_code == 303
            else:
                response = self.site.upload(tiny_png(number), caption=request.tweet, timeout=CLIENT_TIMEOUT)
                ok = response.status_code == 303
            request.latency = time.monotonic() - began
            request.outcome = "ok" if ok else "error"
        except requests.Timeout:
            request.outcome = "timeout"
        except requests.RequestException:
            request.latency = time.monotonic() - began
            request.outcome = "error"

    def stop(self) -> None:
        """No new requests; wait for the ones in flight (each gives up after the client timeout)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._pool.shutdown(wait=True)

    def newly_answered(self) -> tuple[list[Request], list[Request]]:
        """The requests answered (or given up on) since the last call, each returned once; and those
        still waiting for an answer."""
        with self._lock:
            self._unanswered += self.requests[self._listed:]
            self._listed = len(self.requests)
        answered = [r for r in self._unanswered if r.outcome != "pending"]
        self._unanswered = [r for r in self._unanswered if r.outcome == "pending"]
        return answered, list(self._unanswered)

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)
