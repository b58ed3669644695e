"""An ordinary memcache client (pymemcache) works against the server, options and all."""

from __future__ import annotations

import pytest
from pymemcache.client.base import Client


@pytest.fixture
def memcache(server):
    client = Client(("127.0.0.1", server.port), connect_timeout=5, timeout=10)
    try:
        yield client
    finally:
        client.close()


def test_plain_set_and_get(memcache):
    assert memcache.set("jobs", b"one", noreply=False) is True
    assert memcache.set("jobs", b"two", noreply=False) is True
    assert memcache.get("jobs") == b"one"
    assert memcache.get("jobs") == b"two"
    assert memcache.get("jobs") is None


def test_gets_with_options_work_because_the_key_is_echoed(memcache):
    memcache.set("jobs", b"payload", noreply=False)
    assert memcache.get("jobs/open") == b"payload"
    assert memcache.get("jobs/close") is None  # acknowledged: nothing fetched
    assert memcache.get("jobs/peek") is None


def test_a_worker_loop_with_close_open(memcache):
    for number in range(5):
        memcache.set("jobs", b"job %d" % number, noreply=False)
    done = []
    item = memcache.get("jobs/open")
    while item is not None:
        done.append(item)
        item = memcache.get("jobs/close/open/t=50")
    assert done == [b"job %d" % number for number in range(5)]
    assert memcache.stats()[b"queue_jobs_open_transactions"] == 0


def test_default_noreply_sets_keep_the_client_in_step(memcache):
    # pymemcache's default is noreply=True: it sends "noreply" and reads no reply.
    for number in range(50):
        memcache.set("jobs", b"%d" % number)
    assert memcache.version() == b"2.4.1-workbook"
    assert [memcache.get("jobs") for _ in range(50)] == [b"%d" % n for n in range(50)]


def test_delete_and_flush_all_through_pymemcache(memcache):
    memcache.set("jobs", b"x", noreply=False)
    assert memcache.delete("nothing_here", noreply=False) is True  # DELETED, always
    # Kestrel's flush_all reply is not memcached's OK: pymemcache reports False, but it flushed.
    assert memcache.flush_all(noreply=False) is False
    assert memcache.get("jobs") is None


def test_stats_through_pymemcache(memcache):
    memcache.set("jobs", b"abc", noreply=False)
    stats = memcache.stats()
    assert stats[b"queue_jobs_items"] == 1
    assert stats[b"queue_jobs_bytes"] == 3
    assert stats[b"cmd_set"] == 1
