"""Helpers for tests that talk to the queue server: a raw-socket client, an in-process server.

`RawClient` sends exact bytes and reads exact bytes, for asserting the protocol to the byte.
`ServerThread` runs a real TCP server on a free port in a background thread (its own event loop),
for tests that need thousands of round trips; crash tests run the server as a process instead
(`lab.runtime.kestrel_server`), because only a process can be killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import socket
import threading

from lab.kestrel.config import ServerConfig
from lab.kestrel.server import KestrelServer
from lab.runtime.process import LOCALHOST


class RawClient:
    def __init__(self, port: int, host: str = LOCALHOST, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""  # received but not yet read by the test

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.pending += chunk
        return bool(chunk)

    def recv_exact(self, size: int) -> bytes:
        """Exactly `size` bytes (fewer only if the server closed the connection)."""
        while len(self.pending) < size and self._fill():
            pass
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.pending:
            if not self._fill():
                break
        end = self.pending.find(marker)
        end = len(self.pending) if end < 0 else end + len(marker)
        data, self.pending = self.pending[:end], self.pending[end:]
        return data

    def line(self) -> bytes:
        return self.read_until(b"\r\n")

    def request(self, data: bytes, reply_end: bytes = b"\r\n") -> bytes:
        self.send(data)
        return self.read_until(reply_end)

    def get(self, key: str | bytes) -> bytes | None:
        key = key.encode() if isinstance(key, str) else key
        reply = self.request(b"get " + key + b"\r\n")
        if reply == b"END\r\n":
            return None
        if not reply.startswith(b"VALUE "):
            raise AssertionError(f"unexpected reply {reply!r}")
        size = int(reply.split()[3])
        data = self.recv_exact(size + 2)[:-2]
        assert self.read_until(b"\r\n") == b"END\r\n"
        return data

    def set(self, queue: str, data: bytes, exptime: int = 0) -> bytes:
        return self.request(b"set %s 0 %d %d\r\n%s\r\n" % (queue.encode(), exptime, len(data), data))

    def stats(self) -> dict[str, str]:
        reply = self.request(b"stats\r\n", b"END\r\n")
        return dict(line.split(" ", 2)[1:] for line in reply.decode().splitlines()[:-1])

    def closed_by_server(self) -> bool:
        """True when the server has closed this connection (after anything still unread)."""
        try:
            while self._fill():
                pass
        except ConnectionResetError:
            pass
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class ServerThread:
    """A real server running in a background thread until `stop()`; port 0 picks a free port."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.server = KestrelServer(self.config)
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kestrel-server", daemon=True)

    @property
    def port(self) -> int:
        return self.server.port

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as error:  # noqa: BLE001 - handed to the starting thread
            self._error = error
            self._started.set()
            self.loop.close()
            return
        self._started.set()
        try:
            self.loop.run_until_complete(self.server.wait_stopped())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()

    def start(self) -> "ServerThread":
        self._thread.start()
        self._started.wait(15)
        if self._error is not None:
            raise self._error
        return self

    def call(self, function, *args):
        """Run `function(*args)` on the server's loop and return its result."""
        async def run():
            return function(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.server.request_shutdown)
            self._thread.join(15)
            if self._thread.is_alive():
                raise RuntimeError("the server thread did not stop")

    @property
    def stopped(self) -> bool:
        return not self._thread.is_alive()

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
