"""The commands a connection answers: set, get (with its options), delete, flush, stats, ...

`Commands` is mixed into `ClientConnection` (connection.py), which owns the buffer, the parking of a
request that must wait, and the writes. Each handler returns what answering came to: one of the
outcomes below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial

from lab.kestrel import VERSION
from lab.kestrel.collection import TooManyQueues, expiry_from_exptime
from lab.kestrel.items import Fetch, Item, now_ms
from lab.kestrel.journal import Journal
from lab.kestrel.protocol import (
    ClientError,
    GetRequest,
    parse_get_key,
    parse_set,
    wants_noreply,
)
from lab.kestrel.queue import PersistentQueue

log = logging.getLogger("lab.kestrel")

CRLF = b"\r\n"

# What answering one request came to (see ClientConnection.answer_next).
ANSWERED = "answered"  # replied (or noreply): go on with the next request
PARKED = "parked"  # waiting for the disk or an item: later requests wait their turn
CLOSE = "close"  # close the connection after the replies so far
NEED_MORE = "need more"  # the buffer holds no whole request yet


class Commands:
    """The request handlers of `ClientConnection`; they reply with `self.send` and park on futures."""


    def handle(self, command: bytes, args: list[bytes]) -> object:
        """Answer one request (all but `set`)."""
        if command in (b"get", b"gets"):
            return self.do_get(args)
        if command == b"delete":
            return self.do_delete(args)
        if command == b"flush":
            return self.do_flush(args)
        if command == b"flush_all":
            self.server.collection.flush_all()
            if not wants_noreply(args):
                self.send(b"Flushed all queues.\r\n")
            return ANSWERED
        if command == b"stats":
            self.send(b"".join(b"STAT %s %s\r\n" % (name.encode(), str(value).encode())
                               for name, value in self.server.stats()) + b"END\r\n")
            return ANSWERED
        if command == b"version":
            self.send(b"VERSION " + VERSION.encode() + CRLF)
            return ANSWERED
        if command == b"shutdown":
            log.info("client %d asked for shutdown", self.id)
            self.server.request_shutdown()
            return CLOSE
        if command == b"quit":
            return CLOSE
        raise ClientError("unknown command")

    def do_set(self, args: list[bytes], line_start: int) -> object:
        request = parse_set(args)
        if request.length > self.config.limits_for(request.queue).max_item_size:
            self.skipping, self.skip_left = request, request.length
            return self.skip_big_item()
        buffer = self.buffer
        data_start = self.pos
        data_end = data_start + request.length
        if len(buffer) < data_end + 2:
            self.pos = line_start  # the line is read again once its data is here
            return NEED_MORE
        self.pos = data_end + 2
        if buffer[data_end] != 13 or buffer[data_end + 1] != 10:  # CR LF
            raise ClientError("bad data chunk")
        data = bytes(memoryview(buffer)[data_start:data_end])  # one copy, not two
        return self.store(request.queue, data, request.exptime, request.noreply)

    def set_whole(self, data: bytes) -> bool:
        """A shortcut for the commonest request: if `data` is exactly one whole
        `set <queue> <flags> <exptime> <bytes>` for a queue that exists and has no fanout
        children, answer it here, skipping the buffer and the general parser (a third of the
        server's time under put-many). False, with nothing done, for anything else: the general
        path then answers it, errors included."""
        end = data.find(b"\r\n")
        words = data[4:end].split(b" ") if end > 0 else ()
        if len(words) != 4:
            return False
        raw_name, flags, exptime, length = words
        if not (length.isdigit() and exptime.isdigit() and flags.isdigit() and len(flags) < 10):
            return False
        data_start = end + 2
        size = int(length)
        if len(data) != data_start + size + 2 or not data.endswith(CRLF):
            return False
        collection = self.server.collection
        queue = collection.queues.get(raw_name.decode("latin-1"))  # a known name is a valid one
        if queue is None or queue.name in collection.fanout or size > queue.limits.max_item_size:
            return False
        if self.guarded(self.store, queue.name, data[data_start:-2], int(exptime), False) is ANSWERED:
            self.flush()  # NOT_STORED, or SERVER_ERROR
        return True  # else parked: answered once the record is written

    def store(self, queue: str, data: bytes, exptime: int, noreply: bool) -> object:
        """Add the item to the queue (and its fanout children). The reply waits for the end of
        the loop's turn, when the record is written, and with `--fsync always` for its fsync."""
        self.server.cmd_set += 1
        now = now_ms()
        journals = self.server.collection.add(queue, data, now, expiry_from_exptime(exptime, now), self.resume)
        if journals is None:
            if not noreply:
                self.send(b"NOT_STORED\r\n")
            return ANSWERED
        return self.park(partial(self._answer_written, b"" if noreply else b"STORED\r\n", journals))

    def _answer_written(self, reply: bytes, journals: list[Journal], error: OSError | None) -> object:
        if error is not None:
            raise error  # the client hears SERVER_ERROR; nothing was stored
        if self.config.fsync.mode == "always":  # the reply waits until it is on disk
            return self.park_until_durable(journals, reply)
        if reply:
            self.send(reply)
        return ANSWERED

    def park_until_durable(self, journals: list[Journal], reply: bytes) -> object:
        """Park until the record is on disk in every journal it went to (fanout: several)."""
        outcome = {"waiting": len(journals), "error": None}

        def synced(error: OSError | None) -> None:
            outcome["waiting"] -= 1
            outcome["error"] = outcome["error"] or error
            if outcome["waiting"] == 0:
                self.resume(outcome["error"])

        for journal in journals:
            if not journal.when_durable(synced):  # already on disk (it never calls back at once)
                outcome["waiting"] -= 1
        if outcome["waiting"] == 0:
            if reply:
                self.send(reply)
            return ANSWERED
        return self.park(partial(self._answer_durable, reply))

    def _answer_durable(self, reply: bytes, error: OSError | None) -> object:
        if error is not None:
            raise error  # the client hears SERVER_ERROR; the item stays queued
        if reply:
            self.send(reply)
        return ANSWERED

    def skip_big_item(self) -> object:
        """Read past the data of a `set` too big to store, then answer NOT_STORED."""
        available = min(self.skip_left, len(self.buffer) - self.pos)
        self.pos += available
        self.skip_left -= available
        if self.skip_left or len(self.buffer) - self.pos < 2:
            return NEED_MORE
        request, self.skipping = self.skipping, None
        terminator = bytes(self.buffer[self.pos:self.pos + 2])
        self.pos += 2
        if terminator != CRLF:
            raise ClientError("bad data chunk")
        self.server.cmd_set += 1
        with contextlib.suppress(TooManyQueues):  # NOT_STORED either way
            self.server.collection.get_or_create(request.queue)
        if not request.noreply:
            self.send(b"NOT_STORED\r\n")
        return ANSWERED

    def do_get(self, args: list[bytes]) -> object:
        if not args:
            raise ClientError("get needs a queue name", close=False)
        request = parse_get_key(args[0])
        server = self.server
        if request.peek:
            server.cmd_peek += 1
        else:
            server.cmd_get += 1
        queue = server.collection.get_or_create(request.queue)
        # Order inside one request: abort, then close, then the fetch.
        if request.abort:
            queue.abort_oldest(self.id)
            self.send(b"END\r\n")
            return ANSWERED
        if request.close:
            queue.close_oldest(self.id)
        if not request.fetches:
            self.send(b"END\r\n")
            return ANSWERED
        how = Fetch.PEEK if request.peek else Fetch.OPEN if request.open else Fetch.TAKE
        holding = queue.open_count(self.id)
        if how is Fetch.TAKE and holding:
            self.send(b"ERROR\r\n")  # a plain get while holding an open read: a client bug
            return CLOSE
        if how is Fetch.OPEN:
            if holding >= self.config.max_open_reads:
                self.send(b"ERROR\r\n")
                return CLOSE
            self.open_queues.add(queue)
        item = queue.fetch(self.id, how)
        if item is None and request.timeout_ms and not (self.eof or self.lost or server.stopping):
            return self.wait_for_item(queue, how, request)
        self.send_item(request, item)
        return ANSWERED

    def send_item(self, request: GetRequest, item: Item | None) -> None:
        if item is None:
            self.server.get_misses += 1
            self.send(b"END\r\n")
        else:
            self.server.get_hits += 1
            self.send(b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (request.key, len(item.data), item.data))

    def wait_for_item(self, queue: PersistentQueue, how: Fetch, request: GetRequest) -> object:
        waiter = queue.add_waiter(self.id, how)
        future = waiter.future
        timer = asyncio.get_running_loop().call_later(
            request.timeout_ms / 1000, lambda: future.done() or future.set_result(None))
        self.waiting = future

        def answer(done: asyncio.Future) -> object:
            self.waiting = None
            timer.cancel()
            queue.forget_waiter(waiter)
            self.send_item(request, done.result())
            return ANSWERED

        return self.park_on(future, answer)

    def do_delete(self, args: list[bytes]) -> object:
        if not args:
            raise ClientError("delete needs a queue name", close=False)
        removed = self.server.collection.delete(args[0].decode("ascii", errors="replace"))
        reply = b"" if wants_noreply(args) else b"DELETED\r\n"
        if removed is None:
            self.send(reply)
            return ANSWERED
        return self.park_on(removed, partial(self._answer_removed, reply))  # once it is on disk

    def _answer_removed(self, reply: bytes, removed: asyncio.Future) -> object:
        removed.result()  # raises OSError if the unlink or the folder's fsync failed
        self.send(reply)
        return ANSWERED

    def do_flush(self, args: list[bytes]) -> object:
        if not args:
            raise ClientError("flush needs a queue name", close=False)
        queue = self.server.collection.get(args[0].decode("ascii", errors="replace"))
        if queue is not None:
            queue.flush()
        if not wants_noreply(args):
            self.send(b"END\r\n")
        return ANSWERED
