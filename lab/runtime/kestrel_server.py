"""The Kestrel-protocol queue server (lab.kestrel) as a child process of its own, on a free port."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from lab.runtime.process import ManagedProcess, free_port


def kestrel_argv(data_dir: Path, *options: str, port: int) -> list[str]:
    return [sys.executable, "-m", "lab.kestrel", "--port", str(port), "--data-dir", str(data_dir),
            *options]


def kestrel_process(data_dir: Path, *options: str, port: int | None = None,
                    env: Mapping[str, str] | None = None) -> ManagedProcess:
    """The server as a child process (not started yet): `with kestrel_process(...) as server`."""
    port = port or free_port()
    return ManagedProcess("kestrel", kestrel_argv(data_dir, *options, port=port), port=port, env=env)
