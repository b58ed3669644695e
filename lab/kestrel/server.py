"""The TCP server: accepts clients, answers each one's requests in order, stops cleanly.

Each connection is an asyncio Protocol with a buffer. Whatever arrives is answered at once, in the
`data_received` callback: every whole request in the buffer (pipelined ones too), with all their
replies sent in one write. A request that must wait (a `set` for its fsync, a `get q/t=...` for an
item) parks the connection on a future, and later requests wait their turn, so replies keep their
order. There is no task per connection: a task switch per request was most of the server's time.
The Protocol sees a disconnect even while a request waits, which is how a waiting
`get q/t=...` is cancelled and open reads are rolled back at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from functools import partial

from lab.kestrel import VERSION
from lab.kestrel.collection import QueueCollection, expiry_from_exptime
from lab.kestrel.config import ServerConfig
from lab.kestrel.protocol import (
    MAX_LINE,
    ClientError,
    GetRequest,
    SetRequest,
    parse_get_key,
    parse_set,
    split_line,
    wants_noreply,
)
from lab.kestrel.queue import Fetch, Item, PersistentQueue, now_ms

log = logging.getLogger("lab.kestrel")

CRLF = b"\r\n"
REFUSED = b"SERVER_ERROR too many connections\r\n"

# What answering one request came to (see ClientConnection.answer_next).
ANSWERED = "answered"  # replied (or noreply): go on with the next request
PARKED = "parked"  # waiting for the disk or an item: later requests wait their turn
CLOSE = "close"  # close the connection after the replies so far
NEED_MORE = "need more"  # the buffer holds no whole request yet


class KestrelServer:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.collection = QueueCollection(config)
        self.connections: set[ClientConnection] = set()
        self.stopping = False
        self.port = config.port
        self.started_at = time.time()
        self._client_ids = itertools.count(1)
        self._listener: asyncio.Server | None = None
        self._background: list[asyncio.Task] = []
        self._stopped: asyncio.Event | None = None
        # Global stats.
        self.total_connections = 0
        self.cmd_get = self.cmd_set = self.cmd_peek = 0
        self.get_hits = self.get_misses = 0
        self.bytes_read = self.bytes_written = 0

    async def start(self) -> None:
        self._stopped = asyncio.Event()
        self.collection.load()
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            lambda: ClientConnection(self), self.config.host, self.config.port,
            reuse_address=True, backlog=1024)
        self.port = self._listener.sockets[0].getsockname()[1]
        fsync = self.config.fsync
        if fsync.mode == "every":
            self._background.append(loop.create_task(self._sync_every(fsync.interval_ms / 1000)))
        if self.config.idle_timeout:
            self._background.append(loop.create_task(self._drop_idle(self.config.idle_timeout)))
        log.info("listening on %s:%d, data in %s, fsync %s", self.config.host, self.port,
                 self.config.data_dir, fsync)
        if self.stopping:  # asked to stop while starting: stop now that there is a listener to close
            loop.create_task(self._shutdown())

    def next_client_id(self) -> int:
        return next(self._client_ids)

    # -- background work ------------------------------------------------------------------------

    async def _sync_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.collection.sync_in_background()

    async def _drop_idle(self, timeout: float) -> None:
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            limit = time.monotonic() - timeout
            for connection in list(self.connections):
                if connection.waiting is None and connection.last_active < limit:
                    log.info("client %d idle for %.1f s: closing", connection.id, timeout)
                    connection.transport.close()

    # -- stopping -------------------------------------------------------------------------------

    def request_shutdown(self) -> None:
        if not self.stopping:
            self.stopping = True
            if self._listener is not None:  # else start() stops as soon as it is up
                asyncio.get_running_loop().create_task(self._shutdown())

    async def _shutdown(self) -> None:
        log.info("shutting down")
        self._listener.close()
        self.collection.wake_all_waiters()  # every waiting get answers END
        finishing = []
        for connection in list(self.connections):
            connection.stop()  # one still answering a request finishes after it
            finishing.append(connection.done)
        if finishing:
            await asyncio.wait(finishing, timeout=5)
            for connection in list(self.connections):  # e.g. one that reads nothing we write
                connection.finish()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.collection.close()  # every journal synced, whatever the fsync policy
        log.info("stopped")
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # -- stats ----------------------------------------------------------------------------------

    def stats(self) -> list[tuple[str, object]]:
        collection = self.collection
        return [
            ("uptime", int(time.time() - self.started_at)),
            ("time", int(time.time())),
            ("version", VERSION),
            ("curr_items", collection.curr_items),
            ("total_items", collection.total_items),
            ("bytes", collection.bytes),
            ("curr_connections", len(self.connections)),
            ("total_connections", self.total_connections),
            ("cmd_get", self.cmd_get),
            ("cmd_set", self.cmd_set),
            ("cmd_peek", self.cmd_peek),
            ("get_hits", self.get_hits),
            ("get_misses", self.get_misses),
            ("bytes_read", self.bytes_read),
            ("bytes_written", self.bytes_written),
            *collection.queue_stats(),
        ]


class ClientConnection(asyncio.Protocol):
    """One client: its requests are parsed and answered as they arrive, in order.

    No task per connection: `data_received` answers every whole request in the buffer at once
    (pipelined requests included) and sends all their replies in one write. A request that must
    wait (a `set` for its fsync, a `get q/t=...` for an item) parks the connection on a future;
    when that future is done, the request is answered and the rest of the buffer is processed.
    """

    def __init__(self, server: KestrelServer):
        self.server = server
        self.config = server.config
        self.id = 0
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pos = 0  # requests before this offset of `buffer` are consumed
        self.out: list[bytes] = []
        self.eof = False
        self.lost = False
        self.finished = False
        self.done: asyncio.Future | None = None  # set when the connection has finished
        self.reading_paused = False
        self.writing_paused = False
        # The request being answered waits for this future (a fsync, an item); until it is done
        # no later request is looked at, so replies keep their order.
        self.parked: asyncio.Future | None = None
        self._answer_parked = None  # called with the parked future once it is done
        self.waiting: asyncio.Future | None = None  # a `get q/t=...` waiting for an item
        self.skipping: SetRequest | None = None  # a `set` too big to store, being read past
        self.skip_left = 0
        self.open_queues: set[PersistentQueue] = set()
        self.last_active = time.monotonic()
        # Enough for one whole `set` of the largest item: beyond it, stop reading the socket.
        self.read_limit = self.config.largest_item_size + 2 * MAX_LINE + 64 * 1024

    # -- asyncio Protocol callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        server = self.server
        self.done = asyncio.get_running_loop().create_future()
        if server.stopping or len(server.connections) >= self.config.max_connections:
            transport.write(REFUSED)
            transport.close()
            self.lost = self.finished = True
            self.done.set_result(None)
            return
        self.id = server.next_client_id()
        server.total_connections += 1
        server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.finished:
            return
        self.server.bytes_read += len(data)
        self.buffer += data
        self.last_active = time.monotonic()
        if len(self.buffer) - self.pos > self.read_limit and not self.reading_paused:
            self.transport.pause_reading()  # a client that sends faster than we answer
            self.reading_paused = True
        self.process()

    def eof_received(self) -> bool:
        # Answer what was already sent (`printf 'stats\r\n' | nc` works), but wait no more: a
        # client that closed may be gone for good, and an item handed to it would be lost.
        self.eof = True
        self.cancel_waiting()
        self.process()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.writing_paused = False
        self.cancel_waiting()
        self.process()

    def cancel_waiting(self) -> None:
        """A disconnect ends a waiting `get q/t=...` now: it answers END and takes no item."""
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(None)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.process()

    # -- the request loop -----------------------------------------------------------------------

    def process(self) -> None:
        """Answer the whole requests in the buffer, in order, until one has to wait."""
        if self.finished or self.parked is not None or self.writing_paused:
            return
        try:
            while not self.server.stopping:
                outcome = self.answer_next()
                if outcome is NEED_MORE:
                    break
                if outcome is CLOSE:
                    self.finish()
                    return
                self.last_active = time.monotonic()
                if outcome is PARKED:
                    self.flush()  # earlier replies need not wait for this one
                    return
                if self.writing_paused:  # the client reads slower than we answer
                    self.flush()
                    return
        except ClientError as error:  # raised while reading, e.g. a line that never ends
            self.send(b"CLIENT_ERROR " + error.reason.encode() + CRLF)
            self.finish()
            return
        except Exception:
            log.exception("client %d: internal error", self.id)
            self.send(b"SERVER_ERROR internal error\r\n")
            self.finish()
            return
        if self.eof or self.lost or self.server.stopping:
            self.finish()  # no more requests can come: a half-sent one is dropped
            return
        self.flush()
        if self.pos:
            del self.buffer[:self.pos]
            self.pos = 0
        if self.reading_paused:
            self.transport.resume_reading()
            self.reading_paused = False

    def answer_next(self) -> object:
        """Answer the next request in the buffer: ANSWERED, PARKED, CLOSE or NEED_MORE."""
        if self.skipping is not None:
            return self.skip_big_item()
        buffer = self.buffer
        end = buffer.find(b"\n", self.pos)
        if end < 0:
            if len(buffer) - self.pos > MAX_LINE:
                raise ClientError("line too long")
            return NEED_MORE
        line_start, self.pos = self.pos, end + 1
        command, args = split_line(bytes(buffer[line_start:end]))
        if command == b"set":
            return self.guarded(self.do_set, args, line_start)
        return self.guarded(self.handle, command, args)

    def guarded(self, handler, *args) -> object:
        """Run a request's handler, turning its errors into replies."""
        try:
            return handler(*args)
        except ClientError as error:
            self.send(b"CLIENT_ERROR " + error.reason.encode() + CRLF)
            return CLOSE if error.close else ANSWERED
        except OSError as error:  # the journal could not be written: nothing was changed
            self.send_server_error(error)
            return ANSWERED

    def send_server_error(self, error: OSError) -> None:
        log.error("client %d: %s", self.id, error)
        self.send(b"SERVER_ERROR " + str(error).encode(errors="replace")[:200] + CRLF)

    def park(self, future: asyncio.Future, answer) -> object:
        """The current request waits for `future`; then `answer(future)` replies to it."""
        self.parked = future
        self._answer_parked = answer
        future.add_done_callback(self._unpark)
        return PARKED

    def _unpark(self, future: asyncio.Future) -> None:
        answer, self._answer_parked = self._answer_parked, None
        self.parked = None
        if self.finished:
            return
        try:
            outcome = answer(future)
        except OSError as error:  # the fsync failed: the client hears so, nothing else changes
            self.send_server_error(error)
            outcome = ANSWERED
        except Exception:
            log.exception("client %d: internal error", self.id)
            self.send(b"SERVER_ERROR internal error\r\n")
            outcome = CLOSE
        if outcome is CLOSE:
            self.finish()
        else:
            self.process()

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        for queue in self.open_queues:
            if not queue.deleted:
                queue.roll_back(self.id)  # nothing a client held open is ever lost
        self.open_queues.clear()
        self.flush()
        self.transport.close()
        self.server.connections.discard(self)
        if not self.done.done():
            self.done.set_result(None)

    def stop(self) -> None:
        """Shutdown: finish now unless a request is still being answered (that one finishes)."""
        if self.parked is None and not self.writing_paused:
            self.finish()

    # -- writing --------------------------------------------------------------------------------

    def send(self, reply: bytes) -> None:
        self.out.append(reply)

    def flush(self) -> None:
        if self.out:
            data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
            self.out.clear()
            self.server.bytes_written += len(data)
            if not self.lost:
                self.transport.write(data)

    # -- commands -------------------------------------------------------------------------------

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
        data_start = self.pos
        data_end = data_start + request.length
        if len(self.buffer) < data_end + 2:
            self.pos = line_start  # the line is read again once its data is here
            return NEED_MORE
        self.pos = data_end + 2
        if self.buffer[data_end:data_end + 2] != CRLF:
            raise ClientError("bad data chunk")
        data = bytes(self.buffer[data_start:data_end])
        self.server.cmd_set += 1
        now = now_ms()
        stored, durable = self.server.collection.add(
            request.queue, data, now, expiry_from_exptime(request.exptime, now))
        reply = b"" if request.noreply else b"STORED\r\n" if stored else b"NOT_STORED\r\n"
        if durable:  # --fsync always: the reply waits until the record is on disk
            if len(durable) > 1:  # fanout: one journal per queue
                durable = [asyncio.gather(*durable)]
            return self.park(durable[0], partial(self._answer_durable, reply))
        if reply:
            self.send(reply)
        return ANSWERED

    def _answer_durable(self, reply: bytes, synced: asyncio.Future) -> object:
        synced.result()  # raises OSError if the fsync failed
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

        return self.park(future, answer)

    def do_delete(self, args: list[bytes]) -> object:
        if not args:
            raise ClientError("delete needs a queue name", close=False)
        self.server.collection.delete(args[0].decode("ascii", errors="replace"))
        if not wants_noreply(args):
            self.send(b"DELETED\r\n")
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
