"""Fixtures for the queue server's tests: an in-process server per test, with settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.kestrel.config import QueueLimits, ServerConfig
from lab.testing.kestrel import RawClient, ServerThread

LIMIT_FIELDS = set(QueueLimits.__dataclass_fields__)


@pytest.fixture
def start_server(tmp_path: Path):
    """`start_server(**settings)`: a real TCP server on a free port, stopped after the test.

    Settings are ServerConfig fields or QueueLimits fields (max_items=2, fsync=...).
    """
    servers: list[ServerThread] = []

    def start(data_dir: Path | None = None, **settings) -> ServerThread:
        limits = QueueLimits(**{k: settings.pop(k) for k in list(settings) if k in LIMIT_FIELDS})
        config = ServerConfig(data_dir=data_dir or tmp_path / "data", port=0, limits=limits,
                              **settings)
        server = ServerThread(config)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def server(start_server) -> ServerThread:
    return start_server()


@pytest.fixture
def connect(server):
    """`connect()`: a raw client of the test's server, closed after the test."""
    clients: list[RawClient] = []

    def open_client(port: int | None = None) -> RawClient:
        client = RawClient(port or server.port)
        clients.append(client)
        return client

    try:
        yield open_client
    finally:
        for client in clients:
            client.close()


@pytest.fixture
def client(connect) -> RawClient:
    return connect()
