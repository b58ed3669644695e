"""What the queue server adds: a crash of the server loses nothing, a poison message cannot block
the queue, and a message delivered twice is posted once (with the one window that remains). And
what the stage's processes owe it: one kept connection per web process, and a polite stop.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from pymemcache.client.base import Client

from lab.kestrel.stats import read_stats
from lab.runtime.kestrel_server import kestrel_process
from lab.runtime.process import ManagedProcess, wait_until


def test_a_queue_server_crash_loses_nothing_and_duplicates_nothing(site, twitter, photo, drain_seconds):
    twitter.set_mode("down")
    bodies = [f"before the crash {n}" for n in range(5)]
    for body in bodies:
        assert site.comment(photo, body).status_code == 303

    site.crash_queue_server()  # SIGKILL, then start again from its journal
    waiting = site.queue_stats()
    assert waiting["items"] + waiting["open_transactions"] == len(bodies)

    twitter.set_mode("up")
    found = twitter.tweets_starting_with(bodies, seconds=drain_seconds, idle=site.idle)
    assert {body: len(tweets) for body, tweets in found.items()} == {body: 1 for body in bodies}


def test_poison_messages_are_parked_and_the_rest_keep_flowing(site, twitter, photo, drain_seconds):
    queue = Client(("127.0.0.1", site.kestrel_port), default_noreply=False)
    try:
        assert queue.set("tweets", b"\x00 not a tweet at all")
        assert queue.set("tweets", json.dumps({"id": "p1", "user": "mallory", "text": "hi"}).encode())
        assert site.comment(photo, "after the poison").status_code == 303

        found = twitter.tweets_starting_with(["after the poison"], seconds=drain_seconds, idle=site.idle)
        assert len(found["after the poison"]) == 1

        parked = [json.loads(queue.get("tweets_failed/t=2000")) for _ in range(2)]
    finally:
        queue.close()
    # Two job workers may take the two messages, and either may park its own first.
    assert sorted(message["item"] for message in parked) == sorted(
        ["\x00 not a tweet at all", json.dumps({"id": "p1", "user": "mallory", "text": "hi"})])
    errors = {message["item"][:1]: message["error"] for message in parked}
    assert errors["\x00"].startswith("not a tweet message")
    assert errors["{"] == "no Twitter token for 'mallory'"


def test_the_site_answers_when_the_queue_server_is_down(site, twitter, photo):
    site.processes["kestrel"].kill()
    try:
        response = site.comment(photo, "queue is down")
        assert response.status_code == 303  # the comment is saved; its tweet is lost and logged
        assert "queue is down" in site.photo_page(photo).text
    finally:
        site.crash_queue_server()  # start it again
    assert "tweet lost, the queue is unreachable" in site.processes["web"].log_text()


def connections(site) -> tuple[int, int]:
    """The queue server's open connections and all it ever accepted, less this look's own."""
    stats = read_stats("127.0.0.1", site.kestrel_port)
    return int(stats["curr_connections"]) - 1, int(stats["total_connections"]) - 1


def test_each_web_process_keeps_one_connection_to_the_queue(site, twitter, photo):
    wait_until(lambda: connections(site)[0] >= site.job_workers, timeout=15, what="every job worker is connected")
    _, accepted_before = connections(site)
    for number in range(10):
        assert site.comment(photo, f"over a kept connection {number}").status_code == 303
    _, accepted_after = connections(site)
    # Each web process opens one the first time it queues a tweet, and then keeps it.
    assert accepted_after - (accepted_before + 1) <= site.workers


def test_a_comment_made_after_the_queue_server_restarts_keeps_its_tweet(site, twitter, photo, drain_seconds):
    """The web processes' kept connections die with the server: the next `set` tries once more."""
    held = [0]

    def every_web_process_holds_a_connection() -> bool:
        held[0] += 1
        assert site.comment(photo, f"before the restart {held[0]}").status_code == 303
        return connections(site)[0] == site.workers + site.job_workers

    wait_until(every_web_process_holds_a_connection, timeout=15, what="every web process holds a connection")
    site.crash_queue_server()
    bodies = [f"after the restart {number}" for number in range(4 * site.workers)]
    for body in bodies:
        assert site.comment(photo, body).status_code == 303
    found = twitter.tweets_starting_with(bodies, seconds=drain_seconds, idle=site.idle)
    assert {body: len(tweets) for body, tweets in found.items()} == {body: 1 for body in bodies}


def test_a_job_worker_told_to_stop_posts_and_confirms_the_tweet_in_hand(tmp_path, twitter, private_queue):
    """SIGTERM, as a deploy or `workbook up` stopping sends it: the job worker finishes its item
    before it leaves, so the tweet is posted once and nothing goes back to the queue."""
    import signal
    import sys

    from twitpic.db import init_db

    url = f"sqlite:///{tmp_path / 'site.sqlite3'}"
    init_db(url)
    twitter.control(latency_ms=(1000, 1000))  # long enough to be stopped half-way
    queue_one(private_queue, "stopped politely https://twitpic.example/p/1")
    workers = ManagedProcess(
        "03-kestrel:worker", [sys.executable, "-m", "twitpic.worker", "--workers", "1"],
        cwd=Path(__file__).resolve().parents[1],
        env={"TWITPIC_DATABASE_URL": url, "TWITTER_API_URL": twitter.api_url,
             "KESTREL_PORT": str(private_queue[1])},
        ready=lambda: True,
    ).start()
    try:
        wait_until(lambda: twitter.stats()["in_flight"] == 1, timeout=15, what="the job worker is posting")
        workers.signal(signal.SIGTERM)
        assert workers.popen.wait(timeout=15) == 0
    finally:
        workers.stop()
        workers.remove_log()
    assert len(twitter.tweets_starting_with(["stopped politely"])["stopped politely"]) == 1
    left = read_stats(*private_queue)
    assert (int(left["queue_tweets_items"]), int(left["queue_tweets_open_transactions"])) == (0, 0)
    assert [twitter_id for _, twitter_id in recorded(tmp_path)] == [
        tweet["id"] for tweet in twitter.ledger()]


# -- idempotency: the same message delivered twice -------------------------------------------


class WorkerDied(Exception):
    """Stands for kill -9 at a chosen moment."""


@pytest.fixture
def private_queue(tmp_path):
    with kestrel_process(tmp_path / "kestrel") as server:
        yield ("127.0.0.1", server.port)


def worker_for(tmp_path, twitter, address, **settings_changes):
    from twitpic.db import init_db
    from twitpic.worker import Worker, WorkerSettings

    url = f"sqlite:///{tmp_path / 'site.sqlite3'}"
    init_db(url)
    settings = WorkerSettings(
        database_url=url, twitter_api_url=twitter.api_url, queue_address=address, wait=0.5, **settings_changes
    )
    return Worker(settings)


def crash(worker) -> None:
    """The worker's process is gone: its connection drops, so its open read goes back to the queue."""
    worker.queue.close()
    worker.db.close()


def queue_one(address, text="once only https://twitpic.example/p/1"):
    from twitpic.queue import enqueue_tweet

    client = Client(address, default_noreply=False)
    try:
        enqueue_tweet(client, "bob", text)
    finally:
        client.close()


def died_after_posting(tweet_id, twitter_id):
    """In place of the worker's `record_posted`: the process dies after the post, before the record."""
    raise WorkerDied("after posting, before recording")


# --8<-- [start:window]
@pytest.mark.parametrize("twitter_rejects_duplicates, tweets", [(False, 2), (True, 1)])
def test_a_worker_that_dies_between_posting_and_recording(
    tmp_path, twitter, private_queue, twitter_rejects_duplicates, tweets
):
    """The window idempotency cannot close on our side: posted, not yet recorded. Twitter's own
    refusal of duplicate statuses closes it, which is what apps of the day relied on."""
    twitter.control(reject_duplicates=twitter_rejects_duplicates)
    queue_one(private_queue)
    first = worker_for(tmp_path, twitter, private_queue)
    first.record_posted = died_after_posting
    with pytest.raises(WorkerDied):
        first.run_once()
    crash(first)

    second = worker_for(tmp_path, twitter, private_queue)
    try:
        assert second.run_once() is True  # the same message, delivered again
    finally:
        second.close()
    assert len(twitter.tweets_starting_with(["once only"])["once only"]) == tweets
    [(_, twitter_id)] = recorded(tmp_path)  # recorded once either way
    assert (twitter_id is None) == twitter_rejects_duplicates  # no id: Twitter said "duplicate"
# --8<-- [end:window]


def test_a_worker_that_dies_after_recording_is_not_posted_again(tmp_path, twitter, private_queue):
    queue_one(private_queue)
    first = worker_for(tmp_path, twitter, private_queue)
    assert first.run_once() is True, "the first job worker found no item"  # posted, recorded, not confirmed
    crash(first)

    second = worker_for(tmp_path, twitter, private_queue)
    try:
        assert second.run_once() is True, "the item its dead worker held open was not delivered again"
    finally:
        second.close()
    times = len(twitter.tweets_starting_with(["once only"])["once only"])
    assert times == 1, f"the tweet delivered twice was posted {times} times"  # ...and not posted again
    assert len(recorded(tmp_path)) == 1


def recorded(tmp_path) -> list[tuple[str, str | None]]:
    """The worker's record of posted tweets: (tweet id, Twitter's id)."""
    import sqlite3

    with sqlite3.connect(tmp_path / "site.sqlite3") as db:
        return db.execute("SELECT tweet_id, twitter_id FROM posted_tweets").fetchall()


@pytest.fixture
def twitter_erring():
    """An API that answers 500 to every tweet: a fault on Twitter's side that is not an outage."""

    class Erring(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Erring)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(api_url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()


def take_turns(tmp_path, twitter, address, turns: int, max_attempts: int) -> None:
    """Two workers take turns with the queue's head, as several workers do."""
    workers = [
        worker_for(tmp_path, twitter, address, max_attempts=max_attempts, retry_base=0.01, retry_cap=0.01)
        for _ in range(2)
    ]
    try:
        for turn in range(turns):
            assert workers[turn % 2].run_once() is True, f"turn {turn + 1}: the item was not there to take again"
    finally:
        for worker in workers:
            worker.close()  # confirms an item it parked


def queue_contents(address) -> tuple[bytes | None, bytes | None]:
    client = Client(address, default_noreply=False)
    try:
        return client.get("tweets/peek"), client.get("tweets_failed/peek")
    finally:
        client.close()


def test_a_message_that_keeps_failing_is_parked_after_max_attempts_by_all_workers_together(
    tmp_path, twitter_erring, private_queue
):
    queue_one(private_queue, "never through https://twitpic.example/p/1")
    take_turns(tmp_path, twitter_erring, private_queue, turns=3, max_attempts=3)  # three in all, not each

    waiting, parked = queue_contents(private_queue)
    assert waiting is None
    parked = json.loads(parked)
    assert parked["error"] == "Twitter answered 500 (after 3 attempts)"
    assert "never through" in parked["item"]


def test_an_outage_parks_nothing_however_many_tries(tmp_path, twitter, private_queue):
    twitter.set_mode("down")
    queue_one(private_queue, "wait for it https://twitpic.example/p/1")
    take_turns(tmp_path, twitter, private_queue, turns=6, max_attempts=3)

    waiting, parked = queue_contents(private_queue)
    assert parked is None
    assert b"wait for it" in waiting  # still at the head of the queue, for when Twitter is back
    assert twitter.stats()["rejected"]["down"] == 6


def test_a_worker_that_dies_waiting_to_retry_leaves_its_tweet_on_the_queue_once(tmp_path, twitter, private_queue):
    """A tweet handed back for a retry is the same item, not a copy: when the worker dies while it
    waits, the server has nothing open of its to give back a second time."""
    twitter.set_mode("down")
    queue_one(private_queue, "wait once https://twitpic.example/p/1")
    first = worker_for(tmp_path, twitter, private_queue, retry_base=0.01, retry_cap=0.01)
    assert first.run_once() is True, "the job worker found no item"
    crash(first)
    wait_until(lambda: read_stats(*private_queue)["queue_tweets_open_transactions"] == "0", timeout=10,
               what="the queue server has no read open")
    assert read_stats(*private_queue)["queue_tweets_items"] == "1"

    twitter.set_mode("up")
    second = worker_for(tmp_path, twitter, private_queue)
    try:
        while second.run_once():
            pass
    finally:
        second.close()
    assert len(twitter.tweets_starting_with(["wait once"])["wait once"]) == 1
    assert len(recorded(tmp_path)) == 1
