"""Parsing requests of the Kestrel memcache protocol: pure functions, no I/O.

A request line ends at LF (a CR before it is dropped) and is split on single spaces; the command
word is case-insensitive. See the reference page for every command and reply.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from lab.kestrel.collection import valid_queue_name

MAX_LINE = 2048  # longer request lines are refused: no memcache key is that long
MAX_DATA_LENGTH = 2**31 - 1  # a `set` announcing more is malformed, not merely too big


class ClientError(Exception):
    """Reply `CLIENT_ERROR <reason>`; `close` says whether the connection closes after it."""

    def __init__(self, reason: str, close: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.close = close


def split_line(line: bytes) -> tuple[bytes, list[bytes]]:
    """The command word (lower case) and its arguments."""
    if line.endswith(b"\r"):
        line = line[:-1]
    words = line.split(b" ")
    return words[0].lower(), words[1:]


class GetRequest(NamedTuple):  # a tuple: made for every request, so it must be cheap
    key: bytes  # as the client wrote it: echoed in the VALUE line
    queue: str
    timeout_ms: int = 0
    open: bool = False
    close: bool = False
    abort: bool = False
    peek: bool = False

    @property
    def fetches(self) -> bool:
        """`close` alone only acknowledges; every other form fetches (or peeks)."""
        return self.open or self.peek or not self.close


def parse_get_key(key: bytes) -> GetRequest:
    """`queue/option/option...`; options in any order, unknown words ignored."""
    name, *options = key.split(b"/")
    if not name:
        raise ClientError("empty queue name")
    queue = _queue_name(name)
    timeout_ms, flags = 0, set()
    for option in options:
        if option.startswith(b"t="):
            digits = option[2:]
            if not digits.isdigit():
                raise ClientError("bad timeout")
            timeout_ms = int(digits)
        elif option in (b"open", b"close", b"abort", b"peek"):
            flags.add(option.decode())
    if "peek" in flags and flags & {"open", "close", "abort"}:
        raise ClientError("cannot combine peek with open, close or abort")
    if "abort" in flags and flags & {"open", "close"}:
        raise ClientError("cannot combine abort with open or close")
    return GetRequest(key, queue, timeout_ms, "open" in flags, "close" in flags,
                      "abort" in flags, "peek" in flags)


@lru_cache(maxsize=4096)  # a server sees a few names over and over: check each once
def _queue_name(raw: bytes) -> str:
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        name = ""
    if not valid_queue_name(name):
        raise ClientError("bad queue name (allowed: A-Z a-z 0-9 _ - and + for fanout)")
    return name


class SetRequest(NamedTuple):
    queue: str
    exptime: int
    length: int
    noreply: bool


def parse_set(args: list[bytes]) -> SetRequest:
    """`set <queue> <flags> <exptime> <bytes> [noreply]`."""
    if len(args) < 4:
        raise ClientError("set needs <queue> <flags> <exptime> <bytes>", close=False)
    raw_name, flags, exptime, length = args[:4]
    if not (flags.isdigit() and int(flags) < 2**32):
        raise ClientError("bad command line format")
    if not (exptime.isdigit() and length.isdigit()) or int(length) > MAX_DATA_LENGTH:
        raise ClientError("bad command line format")
    noreply = len(args) > 4 and args[4] == b"noreply"
    return SetRequest(_queue_name(raw_name), int(exptime), int(length), noreply)


def wants_noreply(args: list[bytes]) -> bool:
    return bool(args) and args[-1] == b"noreply"
