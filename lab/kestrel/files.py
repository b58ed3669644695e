"""The journal's blocking file work, most of it run in worker threads (journal.py says when)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path

# fdatasync writes the data and what is needed to read it back (the file's size), but not its
# modification time: one disk write fewer. Redis and PostgreSQL use it where it exists.
sync_file = getattr(os, "fdatasync", os.fsync)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def close_in_thread(fd: int) -> None:
    """Close a replaced file's descriptor in a worker thread: closing the last one frees the
    file's blocks, which takes milliseconds for a big file."""
    try:
        asyncio.get_running_loop().run_in_executor(None, os.close, fd)
    except RuntimeError:  # the server is stopping and its threads are gone: close it here
        os.close(fd)


def write_new_file(path: Path, records: Iterable[bytes]) -> tuple[int, int]:
    """Write `records` to a new file and sync it; its descriptor (for appending) and size."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        size = 0
        pending: list[bytes] = []
        for record in records:
            pending.append(record)
            size += len(record)
            if len(pending) >= 256:
                write_all(fd, b"".join(pending))
                pending.clear()
        write_all(fd, b"".join(pending))
        sync_file(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    return fd, size


def copy_range(source: int, target: int, start: int, end: int, sync: bool) -> None:
    """Append bytes `start` to `end` of `source` to `target`, and sync it if asked."""
    while start < end:
        chunk = os.pread(source, min(end - start, 1024 * 1024), start)
        if not chunk:
            raise OSError(f"the journal ended at byte {start}, before {end}")
        write_all(target, chunk)
        start += len(chunk)
    if sync:
        sync_file(target)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def remove_for_good(path: Path) -> None:
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)
