"""Read a Kestrel-protocol server's `stats`, as a dictionary: for the CLI, the tests and the drill."""

from __future__ import annotations

import socket


def read_stats(host: str, port: int, timeout: float = 5.0) -> dict[str, str]:
    """`STAT name value` lines up to `END`, in the server's order."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"stats\r\n")
        received = b""
        while not received.endswith(b"END\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection before END")
            received += chunk
    stats = {}
    for line in received.decode().splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            stats[parts[1]] = parts[2]
    return stats
