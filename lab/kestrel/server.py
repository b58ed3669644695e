"""The TCP server: accepts clients (connection.py answers each), runs the background work, stops cleanly.

There is no task per connection: each is an asyncio Protocol that answers requests as they arrive;
a task switch per request was most of the server's time."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

from lab.kestrel import VERSION
from lab.kestrel.collection import QueueCollection
from lab.kestrel.config import ServerConfig
from lab.kestrel.connection import ClientConnection

log = logging.getLogger("lab.kestrel")


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
        log.info("listening on %s:%d, data in %s, fsync %s, event loop %s", self.config.host,
                 self.port, self.config.data_dir, fsync, type(loop).__module__.partition(".")[0])
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
