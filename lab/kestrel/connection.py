"""One client's connection: its buffer, its requests answered in order, its replies written.

No task per connection: `data_received` answers every whole request in the buffer at once
(pipelined requests included) and sends all their replies in one write. A request that must wait
parks the connection until it can be answered; the Protocol still sees a disconnect meanwhile,
which is how a waiting `get q/t=...` is cancelled and open reads are rolled back at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from lab.kestrel.collection import TooManyQueues
from lab.kestrel.commands import ANSWERED, CLOSE, CRLF, NEED_MORE, PARKED, Commands
from lab.kestrel.protocol import MAX_LINE, ClientError, SetRequest, split_line
from lab.kestrel.queue import PersistentQueue

if TYPE_CHECKING:
    from lab.kestrel.server import KestrelServer

log = logging.getLogger("lab.kestrel")

REFUSED = b"SERVER_ERROR too many connections\r\n"
# Replies are handed to the transport in chunks of about this size. Its write buffer pauses this
# connection past asyncio's high-water mark (64 KiB), so a client that pipelines requests and
# reads no replies costs the server about a chunk, one reply and its read limit, not every reply.
OUT_CHUNK = 256 * 1024


class ClientConnection(Commands, asyncio.Protocol):
    """One client: its requests are parsed and answered as they arrive, in order.

    No task per connection: `data_received` answers every whole request in the buffer at once
    (pipelined requests included) and sends all their replies in one write. A request that must
    wait (a `set` for its fsync, a `get q/t=...` for an item) parks the connection; when it can
    be answered (`resume`), it is, and the rest of the buffer is processed.
    """

    def __init__(self, server: KestrelServer):
        self.server = server
        self.config = server.config
        self.id = 0
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pos = 0  # requests before this offset of `buffer` are consumed
        self.out: list[bytes] = []
        self.out_bytes = 0  # in `out`, not yet handed to the transport
        self.eof = False
        self.lost = False
        self.finished = False
        self.done: asyncio.Future | None = None  # set when the connection has finished
        self.reading_paused = False
        self.writing_paused = False
        # The request being answered waits (for an fsync, an item) and this replies to it once
        # it can; until then no later request is looked at, so replies keep their order.
        self.parked = None
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
        self.last_active = time.monotonic()
        if (not self.buffer and self.parked is None and data.startswith(b"set ")
                and not self.writing_paused and self.skipping is None and not self.server.stopping
                and self.set_whole(data)):
            return  # one whole `set`, answered (or parked) by the shortcut
        self.buffer += data
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
        # No one reads the replies any more: answer nothing else (a plain `get` would take an item
        # no one receives), and give back whatever this client held open.
        self.lost = True
        self.writing_paused = False
        self.cancel_waiting()
        self.finish()

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
            while self.pos < len(self.buffer) and not self.server.stopping:
                outcome = self.answer_next()
                if outcome is NEED_MORE:
                    break
                if outcome is CLOSE:
                    self.finish()
                    return
                if outcome is PARKED:
                    self.flush()  # earlier replies need not wait for this one
                    return
                if self.out_bytes >= OUT_CHUNK:  # hand a chunk to the transport: it may pause us
                    self.flush()
                if self.writing_paused:  # the client reads slower than we answer: stop until it drains
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
        command, args = split_line(bytes(memoryview(buffer)[line_start:end]))
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
        except TooManyQueues as error:  # a limit of the server's, not a malformed request
            self.send(b"SERVER_ERROR " + str(error).encode() + CRLF)
            return ANSWERED

    def send_server_error(self, error: OSError) -> None:
        log.error("client %d: %s", self.id, error)
        self.send(b"SERVER_ERROR " + str(error).encode(errors="replace")[:200] + CRLF)

    def park(self, answer) -> object:
        """The current request waits; `resume(result)` then calls `answer(result)` to reply."""
        self.parked = answer
        return PARKED

    def park_on(self, future: asyncio.Future, answer) -> object:
        """Park until `future` is done; `answer(future)` replies."""
        future.add_done_callback(self.resume)
        return self.park(answer)

    def resume(self, result) -> None:
        answer, self.parked = self.parked, None
        if self.finished:
            return
        self.last_active = time.monotonic()
        try:
            outcome = answer(result)
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
        self.out_bytes += len(reply)

    def flush(self) -> None:
        if self.out:
            data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
            self.out.clear()
            self.out_bytes = 0
            self.server.bytes_written += len(data)
            if not self.lost:
                self.transport.write(data)
