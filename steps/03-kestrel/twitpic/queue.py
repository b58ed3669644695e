"""The `tweets` queue on the Kestrel-protocol server, through an ordinary memcache client.

Kestrel spoke the memcache protocol, so any memcache client could use it: `set` adds an item to
the queue named by the key, `get` takes one off. Kestrel forgot memcache's flags, so a client's
own serializer would get raw bytes back: we send bytes (JSON) and decode them ourselves.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass

from flask import Flask, current_app
from pymemcache.client.base import Client, PooledClient
from pymemcache.client.retrying import RetryingClient
from pymemcache.exceptions import MemcacheError, MemcacheUnexpectedCloseError

log = logging.getLogger(__name__)

TWEETS = "tweets"
FAILED = "tweets_failed"  # poison messages, parked with their error for a person to look at


@dataclass(frozen=True)
class TweetMessage:
    id: str  # given when the tweet is queued; the worker records it once posted
    user: str
    text: str


def connect(address: tuple[str, int], wait: float = 0.0) -> Client:
    # `wait` is the longest a `get .../t=` may block; the socket must not give up before it.
    return Client(address, connect_timeout=2, timeout=wait + 5, default_noreply=False)


def encode(message: TweetMessage) -> bytes:
    return json.dumps({"id": message.id, "user": message.user, "text": message.text}).encode()


def decode(raw: bytes) -> TweetMessage:
    """The message in an item, or ValueError for anything else (a poison message)."""
    try:
        fields = json.loads(raw)
        message = TweetMessage(fields["id"], fields["user"], fields["text"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"not a tweet message: {error.__class__.__name__}") from None
    if not all(isinstance(value, str) and value for value in (message.id, message.user, message.text)):
        raise ValueError("not a tweet message: empty or non-string field")
    return message


# --8<-- [start:enqueue]
def enqueue_tweet(client: Client | RetryingClient, username: str, text: str) -> str:
    """Put a tweet on the queue; its id. The server has it on disk when `set` returns."""
    message = TweetMessage(uuid.uuid4().hex, username, text)
    if not client.set(TWEETS, encode(message)):
        raise MemcacheError("the queue refused the item (NOT_STORED: full, or too large)")
    return message.id


def queue_tweet(username: str, text: str) -> str | None:
    """From a web request: queue the tweet, or log it as lost if the queue server is unreachable."""
    try:
        return enqueue_tweet(get_queue(), username, text)
    except (OSError, MemcacheError) as error:
        log.error("tweet lost, the queue is unreachable: %s", error)
        return None
# --8<-- [end:enqueue]


# --8<-- [start:client]
def get_queue() -> RetryingClient:
    return current_app.extensions["queue"]


def init_app(app: Flask) -> None:
    """One client per web process, whose connection is kept from one request to the next. A pool,
    because a threaded server (`flask run`) serves requests side by side. A kept connection dies
    when the queue server restarts: the next `set` then tries once more, on a new one. Should the
    first try's item have arrived after all, the queue holds the message twice, as after a
    redelivery: the record of posted ids stops a second post if one job worker takes both in turn,
    and Twitter's refusal of a repeat (`DuplicateTweet`) if two take them at once."""
    pool = PooledClient(app.config["KESTREL_ADDRESS"], connect_timeout=2, timeout=5, default_noreply=False)
    app.extensions["queue"] = RetryingClient(
        pool, attempts=2, retry_for=[MemcacheUnexpectedCloseError, ConnectionError]
    )
# --8<-- [end:client]
