"""A message that is not a tweet is parked on tweets_failed, with its error, by the first worker
that reads it."""

import json

import pytest
from pymemcache.client.base import Client


def test_a_poison_message_is_parked_with_its_error(site, twitter):
    queue = Client(("127.0.0.1", site.kestrel_port), default_noreply=False)
    try:
        assert queue.set("tweets", b"\x00 not a tweet at all")
        parked = queue.get("tweets_failed/t=3000")  # wait up to 3 s for it
    finally:
        queue.close()
    assert parked is not None, "nothing was parked on tweets_failed"
    try:
        parked = json.loads(parked)
    except ValueError:
        pytest.fail(f"what was parked is not JSON: {parked[:40]!r}")
    assert parked.get("item") == "\x00 not a tweet at all", f"parked as {parked.get('item')!r}"
    assert parked.get("error", "").startswith("not a tweet message"), f"the error parked: {parked.get('error')!r}"
