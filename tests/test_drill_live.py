"""`workbook drill --live`'s server (lab/drill/live.py) and what it streams, without a browser:
the page and the viewer's files, the events in order for a page opened at any moment, and a stop
that neither waits for a closed page nor leaves a thread behind. The browser check
(test_browser.py) watches a real drill on the page."""

import http.client
import json
import threading
import time
from pathlib import Path

import pytest
import requests

from lab.drill.board import Sample
from lab.drill.live import LiveFeed
from lab.drill.load import Load, Request

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def feed():
    feed = LiveFeed()
    yield feed
    if feed.thread.is_alive():
        feed.stop()


class EventStream:
    """A page's view of /events: each event as (id, kind, data), read as the server sends them."""

    def __init__(self, url: str):
        host_port = url.split("/")[2]
        self.connection = http.client.HTTPConnection(host_port, timeout=30)
        self.connection.request("GET", "/events")
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        assert self.response.getheader("Content-Type") == "text/event-stream"

    def next(self, within: float = 30.0):
        """The next event, or None when the server has ended the stream."""
        fields, deadline = {}, time.monotonic() + within
        while time.monotonic() < deadline:  # keep-alive comments alone do not count as an event
            line = self.response.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line == "" and fields:
                return int(fields["id"]), fields["event"], json.loads(fields["data"])
            if line and not line.startswith(":"):
                name, value = line.split(": ", 1)
                fields[name] = value
        raise AssertionError(f"no event within {within} s")

    def close(self):
        self.response.close()  # it holds the socket open as long as it is open itself
        self.connection.close()


def test_the_page_and_the_viewer_are_served_from_127_0_0_1_only(feed):
    assert feed.url.startswith("http://127.0.0.1:")
    page = requests.get(feed.url, timeout=10)
    assert page.status_code == 200 and 'data-live="/events"' in page.text
    for path, source in (("assets/drill-viewer.js", "docs/assets/javascripts/drill-viewer.js"),
                         ("assets/drill-viewer.css", "docs/assets/css/drill-viewer.css")):
        assert f"/{path}" in page.text
        served = requests.get(feed.url + path, timeout=10)
        assert served.status_code == 200 and served.content == (ROOT / source).read_bytes()
    assert requests.get(feed.url + "results.json", timeout=10).status_code == 404


def test_a_page_opened_late_gets_every_event_so_far_then_each_new_one_then_the_end(feed):
    feed.start_drill({"scenario": "hang"}, ["01-naive"])
    feed.say("01-naive", "starting web")
    stream = EventStream(feed.url)
    assert stream.next() == (0, "drill", {"scenario": "hang", "stage_names": ["01-naive"]})
    assert stream.next() == (1, "say", {"stage": "01-naive", "text": "starting web"})

    # A sample published after the page connected reaches it whole.
    request = {"kind": "view", "start": 0.1, "outcome": "ok", "latency": 0.02}
    feed.sample("01-naive", Sample("outage", 21.0, 0.5, 3, web="ttti", jobs="", tweets=7,
                                   requests=[request], waiting=[["comment", 20.5]]))
    number, kind, data = stream.next()
    assert (number, kind) == (2, "sample")
    assert data == {"stage": "01-naive", "phase": "outage", "seconds": 21.0, "answered": 0.5, "backlog": 3,
                    "web": "ttti", "jobs": "", "tweets": 7, "requests": [request],
                    "waiting": [["comment", 20.5]]}

    feed.stage_done("01-naive", {"summary": {"errors": 1}, "requests": [request], "backlog": [[21.0, 3]],
                                 "slots": [[21.0, "ttti", "", 7]], "phases": [], "drained_at": None,
                                 "verdict": {"not": "streamed"}})
    number, kind, data = stream.next()
    assert (number, kind) == (3, "stage_done") and "verdict" not in data["outcome"]
    assert data["outcome"]["slots"] == [[21.0, "ttti", "", 7]]

    ending = threading.Thread(target=feed.end, args=("drill-results",))
    ending.start()
    assert stream.next() == (4, "end", {"out": "drill-results"})
    assert stream.next() is None  # the server ends the stream after `end`
    ending.join(timeout=30)
    assert not ending.is_alive() and not feed.thread.is_alive()
    with pytest.raises(requests.ConnectionError):
        requests.get(feed.url, timeout=5)


def test_a_page_closed_mid_stream_does_not_hold_the_end_up(feed):
    feed.start_drill({"scenario": "hang"}, ["01-naive"])
    stream = EventStream(feed.url)
    assert stream.next()[1] == "drill"
    stream.close()
    # The server notices the closed page when it next writes to it, and lets go of the stream.
    with feed.changed:
        while feed.streams_open:
            feed.publish("say", {"stage": "01-naive", "text": "still running"})
            feed.changed.wait(timeout=0.05)
    feed.end("drill-results")
    assert not feed.thread.is_alive()


def test_each_answered_request_is_told_once_and_the_unanswered_are_listed_until_then():
    load = Load(site=None, photo_id=1, label="test", rates={})
    first, second = Request("view", 0.1), Request("comment", 0.2)
    load.requests += [first, second]
    assert load.newly_answered() == ([], [first, second])

    second.latency, second.outcome = 1.5, "ok"
    assert load.newly_answered() == ([second], [first])
    third = Request("upload", 0.3)
    load.requests.append(third)
    first.outcome = "timeout"
    assert load.newly_answered() == ([first], [third])
    assert load.newly_answered() == ([], [third])
    third.latency, third.outcome = 0.4, "error"
    assert load.newly_answered() == ([third], [])
    assert load.newly_answered() == ([], [])
