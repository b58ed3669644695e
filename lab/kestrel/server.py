"""The TCP server: accepts clients, runs each one's requests in order, stops cleanly.

Each connection is an asyncio Protocol feeding a buffer, plus one task that reads requests from
that buffer and answers them one at a time, so pipelined requests are answered in order. The
Protocol side sees a disconnect even while the task waits (for an item, or for the disk), which
is how a waiting `get q/t=...` is cancelled and open reads are rolled back at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

from lab.kestrel import VERSION
from lab.kestrel.collection import QueueCollection, expiry_from_exptime
from lab.kestrel.config import ServerConfig
from lab.kestrel.protocol import (
    MAX_LINE,
    ClientError,
    parse_get_key,
    parse_set,
    split_line,
    wants_noreply,
)
from lab.kestrel.queue import Fetch, Item, PersistentQueue, now_ms

log = logging.getLogger("lab.kestrel")

CRLF = b"\r\n"
REFUSED = b"SERVER_ERROR too many connections\r\n"


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
            asyncio.get_running_loop().create_task(self._shutdown())

    async def _shutdown(self) -> None:
        log.info("shutting down")
        self._listener.close()
        self.collection.wake_all_waiters()  # every waiting get answers END
        tasks = []
        for connection in list(self.connections):
            connection.more.set()  # a client waiting for input sees `stopping` and finishes
            tasks.append(connection.task)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=5)
            for task in late:  # e.g. a client that reads nothing while we write to it
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
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
    def __init__(self, server: KestrelServer):
        self.server = server
        self.config = server.config
        self.id = 0
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task | None = None
        self.buffer = bytearray()
        self.pos = 0  # requests before this offset of `buffer` are consumed
        self.more = asyncio.Event()  # set when data, EOF or a disconnect arrives
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.out: list[bytes] = []
        self.eof = False
        self.lost = False
        self.reading_paused = False
        self.waiting: asyncio.Future | None = None  # a `get q/t=...` waiting for an item
        self.open_queues: set[PersistentQueue] = set()
        self.last_active = time.monotonic()
        # Enough for one whole `set` of the largest item: beyond it, stop reading the socket.
        self.read_limit = self.config.limits.max_item_size + 2 * MAX_LINE + 64 * 1024

    # -- asyncio Protocol callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        server = self.server
        if server.stopping or len(server.connections) >= self.config.max_connections:
            transport.write(REFUSED)
            transport.close()
            self.lost = True
            return
        self.id = server.next_client_id()
        server.total_connections += 1
        server.connections.add(self)
        self.task = asyncio.get_running_loop().create_task(self.run())

    def data_received(self, data: bytes) -> None:
        if self.task is None:
            return
        self.server.bytes_read += len(data)
        self.buffer += data
        self.last_active = time.monotonic()
        self.more.set()
        if len(self.buffer) - self.pos > self.read_limit and not self.reading_paused:
            self.transport.pause_reading()  # a client that sends faster than we answer
            self.reading_paused = True

    def eof_received(self) -> bool:
        # Answer what was already sent (`printf 'stats\r\n' | nc` works), but wait no more.
        self.eof = True
        self._wake()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake()

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def _wake(self) -> None:
        self.more.set()
        self.can_write.set()
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(None)

    # -- the request loop -----------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while not self.server.stopping:
                line = await self.read_line()
                if line is None or not await self.handle(line):
                    break
                self.last_active = time.monotonic()
                if not self.can_write.is_set():
                    self.flush()
                    await self.can_write.wait()
        except ClientError as error:  # raised while reading, e.g. a line that never ends
            self.send(b"CLIENT_ERROR " + error.reason.encode() + CRLF)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("client %d: internal error", self.id)
            self.send(b"SERVER_ERROR internal error\r\n")
        finally:
            self.finish()

    def finish(self) -> None:
        for queue in self.open_queues:
            if not queue.deleted:
                queue.roll_back(self.id)  # nothing a client held open is ever lost
        self.open_queues.clear()
        self.flush()
        self.transport.close()
        self.server.connections.discard(self)

    # -- reading --------------------------------------------------------------------------------

    async def _wait_for_more(self) -> bool:
        """Wait for more input; False when none can come (EOF, disconnect, shutdown)."""
        if self.eof or self.lost or self.server.stopping:
            return False
        self.flush()
        if self.pos:
            del self.buffer[:self.pos]
            self.pos = 0
        if self.reading_paused:
            self.transport.resume_reading()
            self.reading_paused = False
        self.more.clear()
        await self.more.wait()
        return not self.lost

    async def read_line(self) -> bytes | None:
        """The next request line without its LF; None if the client is gone."""
        while True:
            end = self.buffer.find(b"\n", self.pos)
            if end >= 0:
                line = bytes(self.buffer[self.pos:end])
                self.pos = end + 1
                return line
            if len(self.buffer) - self.pos > MAX_LINE:
                raise ClientError("line too long")
            if not await self._wait_for_more():
                return None  # a half-sent request is dropped

    async def read_exact(self, size: int) -> bytes | None:
        while len(self.buffer) - self.pos < size:
            if not await self._wait_for_more():
                return None
        data = bytes(self.buffer[self.pos:self.pos + size])
        self.pos += size
        return data

    async def skip(self, size: int) -> bool:
        """Read past `size` bytes without keeping them (an item too big to store)."""
        while size:
            available = min(size, len(self.buffer) - self.pos)
            self.pos += available
            size -= available
            if size and not await self._wait_for_more():
                return False
        return True

    # -- writing --------------------------------------------------------------------------------

    def send(self, reply: bytes) -> None:
        self.out.append(reply)

    def flush(self) -> None:
        if self.out:
            data = b"".join(self.out)
            self.out.clear()
            self.server.bytes_written += len(data)
            if not self.lost:
                self.transport.write(data)

    # -- commands -------------------------------------------------------------------------------

    async def handle(self, line: bytes) -> bool:
        """Answer one request; False when the connection must close."""
        command, args = split_line(line)
        try:
            if command in (b"get", b"gets"):
                return await self.do_get(args)
            if command == b"set":
                return await self.do_set(args)
            if command == b"delete":
                return self.do_delete(args)
            if command == b"flush":
                return self.do_flush(args)
            if command == b"flush_all":
                self.server.collection.flush_all()
                if not wants_noreply(args):
                    self.send(b"Flushed all queues.\r\n")
                return True
            if command == b"stats":
                self.send(b"".join(b"STAT %s %s\r\n" % (name.encode(), str(value).encode())
                                   for name, value in self.server.stats()) + b"END\r\n")
                return True
            if command == b"version":
                self.send(b"VERSION " + VERSION.encode() + CRLF)
                return True
            if command == b"shutdown":
                log.info("client %d asked for shutdown", self.id)
                self.server.request_shutdown()
                return False
            if command == b"quit":
                return False
            raise ClientError("unknown command")
        except ClientError as error:
            self.send(b"CLIENT_ERROR " + error.reason.encode() + CRLF)
            return not error.close
        except OSError as error:  # the journal could not be written: nothing was changed
            log.error("client %d: %s", self.id, error)
            self.send(b"SERVER_ERROR " + str(error).encode(errors="replace")[:200] + CRLF)
            return True

    async def do_set(self, args: list[bytes]) -> bool:
        request = parse_set(args)
        too_big = request.length > self.config.limits.max_item_size
        if too_big:
            data = b"" if await self.skip(request.length) else None
        else:
            data = await self.read_exact(request.length)
        terminator = None if data is None else await self.read_exact(2)
        if terminator is None:
            return False  # the client went away mid-item: nothing is stored
        if terminator != CRLF:
            raise ClientError("bad data chunk")
        self.server.cmd_set += 1
        collection = self.server.collection
        if too_big:
            collection.get_or_create(request.queue)
            stored = False
        else:
            now = now_ms()
            stored, durable = collection.add(request.queue, data, now,
                                             expiry_from_exptime(request.exptime, now))
            if durable:
                self.flush()  # earlier replies need not wait for this fsync
                await asyncio.gather(*durable)
        if not request.noreply:
            self.send(b"STORED\r\n" if stored else b"NOT_STORED\r\n")
        return True

    async def do_get(self, args: list[bytes]) -> bool:
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
            return True
        if request.close:
            queue.close_oldest(self.id)
        if not request.fetches:
            self.send(b"END\r\n")
            return True
        how = Fetch.PEEK if request.peek else Fetch.OPEN if request.open else Fetch.TAKE
        holding = queue.open_count(self.id)
        if how is Fetch.TAKE and holding:
            self.send(b"ERROR\r\n")  # a plain get while holding an open read: a client bug
            return False
        if how is Fetch.OPEN:
            if holding >= self.config.max_open_reads:
                self.send(b"ERROR\r\n")
                return False
            self.open_queues.add(queue)
        item = queue.fetch(self.id, how)
        if item is None and request.timeout_ms and not (self.eof or self.lost or server.stopping):
            item = await self.wait_for_item(queue, how, request.timeout_ms / 1000)
        if item is None:
            server.get_misses += 1
            self.send(b"END\r\n")
        else:
            server.get_hits += 1
            self.send(b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (request.key, len(item.data), item.data))
        return True

    async def wait_for_item(self, queue: PersistentQueue, how: Fetch, seconds: float
                            ) -> Item | None:
        self.flush()
        waiter = queue.add_waiter(self.id, how)
        future = waiter.future
        timer = asyncio.get_running_loop().call_later(
            seconds, lambda: future.done() or future.set_result(None))
        self.waiting = future
        try:
            return await future
        finally:
            self.waiting = None
            timer.cancel()
            queue.forget_waiter(waiter)

    def do_delete(self, args: list[bytes]) -> bool:
        if not args:
            raise ClientError("delete needs a queue name", close=False)
        self.server.collection.delete(args[0].decode("ascii", errors="replace"))
        if not wants_noreply(args):
            self.send(b"DELETED\r\n")
        return True

    def do_flush(self, args: list[bytes]) -> bool:
        if not args:
            raise ClientError("flush needs a queue name", close=False)
        queue = self.server.collection.get(args[0].decode("ascii", errors="replace"))
        if queue is not None:
            queue.flush()
        if not wants_noreply(args):
            self.send(b"END\r\n")
        return True
