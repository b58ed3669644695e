"""The journal: an append-only file per queue, holding every change before it is acknowledged.

Records follow Kestrel's layout (one opcode byte, then little-endian fields) and its opcode
numbers, with one addition: every record ends with a CRC-32 of its bytes, so that a torn write
or garbage at the end of the file is recognised instead of being replayed as items.

    ADD              02 | u32 length | i64 add time ms | i64 expiry ms | data | u32 crc
    REMOVE           01 | u32 crc
    REMOVE_TENTATIVE 09 | u32 xid | u32 crc       (a `get q/open` took the head)
    UNREMOVE         05 | u32 xid | u32 crc       (abort or rollback: back to the head)
    CONFIRM_REMOVE   06 | u32 xid | u32 crc       (`get q/close`: gone for good)

`length` counts the two times and the data (16 + len(data)), as in Kestrel's ADDX record.
Expiry 0 means "never".

Durability (`--fsync`): with `always`, a writer waits for `wait_durable()`. One fsync runs at a
time, in a worker thread, while the event loop goes on answering requests; every record written
while it runs waits for the next one, so a hundred concurrent writers share one fsync instead of
queueing for a hundred ("group commit"). The first fsync of a batch starts at the end of the
event loop's turn, not at the first writer, so it holds every record that turn wrote.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lab.kestrel.config import FsyncPolicy

log = logging.getLogger("lab.kestrel.journal")

OP_REMOVE = 1
OP_ADD = 2  # Kestrel's ADDX: an item with its expiry
OP_UNREMOVE = 5
OP_CONFIRM_REMOVE = 6
OP_REMOVE_TENTATIVE = 9
XID_OPS = (OP_REMOVE_TENTATIVE, OP_UNREMOVE, OP_CONFIRM_REMOVE)
OP_NAMES = {OP_REMOVE: "REMOVE", OP_ADD: "ADD", OP_UNREMOVE: "UNREMOVE",
            OP_CONFIRM_REMOVE: "CONFIRM_REMOVE", OP_REMOVE_TENTATIVE: "REMOVE_TENTATIVE"}

_ADD_HEAD = struct.Struct("<BIqq")  # opcode, length, add time, expiry: 21 bytes
_XID_RECORD = struct.Struct("<BI")  # opcode, xid: 5 bytes
_CRC = struct.Struct("<I")
ADD_OVERHEAD = _ADD_HEAD.size + _CRC.size  # bytes an ADD record adds to its data
TEMP_SUFFIX = "~~"  # Kestrel's suffix too: queue names may not contain "~"


def _with_crc(record: bytes) -> bytes:
    return record + _CRC.pack(zlib.crc32(record))


def encode_add(add_time_ms: int, expiry_ms: int, data: bytes) -> bytes:
    head = _ADD_HEAD.pack(OP_ADD, 16 + len(data), add_time_ms, expiry_ms)
    return b"".join((head, data, _CRC.pack(zlib.crc32(data, zlib.crc32(head)))))


REMOVE_RECORD = _with_crc(bytes([OP_REMOVE]))


def encode_xid(op: int, xid: int) -> bytes:
    return _with_crc(_XID_RECORD.pack(op, xid))


@dataclass(slots=True)
class Record:
    op: int
    offset: int  # where the record starts in the file
    xid: int = 0
    add_time: int = 0
    expiry: int = 0
    data: bytes = b""


class CorruptRecord(Exception):
    """The bytes at an offset are not a whole, intact record."""


class _ReadWindow:
    """Reads from the journal file by offset through a cached window, for replay and read-behind.

    The file only ever grows at the end, so cached bytes never go stale (truncation and
    compaction call `reset`).
    """

    CHUNK = 1024 * 1024

    def __init__(self, fd: int):
        self.fd = fd
        self.reset(fd)

    def reset(self, fd: int) -> None:
        self.fd = fd
        self.start = 0
        self.window = b""

    def read(self, offset: int, size: int) -> bytes:
        end = offset + size
        if not (self.start <= offset and end <= self.start + len(self.window)):
            self.window = os.pread(self.fd, max(size, self.CHUNK), offset)
            self.start = offset
        return self.window[offset - self.start:end - self.start]


def decode_at(reader: _ReadWindow, offset: int, file_size: int) -> tuple[Record, int]:
    """The record at `offset` and the offset after it; CorruptRecord if it is not intact."""
    first = reader.read(offset, 1)
    if not first:
        raise CorruptRecord("end of file")
    op = first[0]
    if op == OP_ADD:
        head = reader.read(offset, _ADD_HEAD.size)
        if len(head) < _ADD_HEAD.size:
            raise CorruptRecord("truncated ADD header")
        _, length, add_time, expiry = _ADD_HEAD.unpack(head)
        end = offset + 5 + length + _CRC.size
        # Checking the length against the file first means garbage never makes us allocate GiBs.
        if length < 16 or end > file_size:
            raise CorruptRecord(f"ADD length {length} runs past the end of the file")
        body = reader.read(offset, end - offset)
        if len(body) < end - offset:
            raise CorruptRecord("truncated ADD record")
        (crc,) = _CRC.unpack_from(body, len(body) - _CRC.size)
        if zlib.crc32(memoryview(body)[:-_CRC.size]) != crc:
            raise CorruptRecord("ADD checksum mismatch")
        return Record(OP_ADD, offset, add_time=add_time, expiry=expiry,
                      data=body[_ADD_HEAD.size:-_CRC.size]), end
    if op == OP_REMOVE:
        size = 1 + _CRC.size
    elif op in XID_OPS:
        size = _XID_RECORD.size + _CRC.size
    else:
        raise CorruptRecord(f"unknown opcode {op}")
    body = reader.read(offset, size)
    if len(body) < size:
        raise CorruptRecord(f"truncated {OP_NAMES[op]} record")
    (crc,) = _CRC.unpack_from(body, size - _CRC.size)
    if zlib.crc32(body[:-_CRC.size]) != crc:
        raise CorruptRecord(f"{OP_NAMES[op]} checksum mismatch")
    xid = _XID_RECORD.unpack_from(body)[1] if op in XID_OPS else 0
    return Record(op, offset, xid=xid), offset + size


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    def __init__(self, path: Path, fsync: FsyncPolicy):
        self.path = path
        self.fsync = fsync
        created = not path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        if created and fsync.mode == "always":
            fsync_dir(path.parent)  # the new file's name is on disk before its first item is STORED
        self.size = os.fstat(self._fd).st_size
        self._reader = _ReadWindow(self._fd)
        # Bytes ever appended and bytes known to be on disk: counted across compactions.
        self._written = 0
        self._synced = 0
        self._syncing = False
        self._sync_done_event: asyncio.Event | None = None
        # Writers waiting for their record to be on disk: (bytes written up to it, future).
        self._durable_waiters: deque[tuple[int, asyncio.Future]] = deque()
        self._start_pending = False  # an fsync will start at the end of this loop turn
        self._retired_fds: list[int] = []  # replaced by compaction while a sync used them
        self.closed = False

    # -- reading --------------------------------------------------------------------------------

    def replay(self) -> Iterator[Record]:
        """Every intact record from the start. A bad tail is cut off (and logged)."""
        offset = 0
        while offset < self.size:
            try:
                record, offset_after = decode_at(self._reader, offset, self.size)
            except CorruptRecord as problem:
                log.warning("journal %s: %s at byte %d; cutting off the last %d bytes",
                            self.path, problem, offset, self.size - offset)
                self._truncate(offset)
                return
            yield record
            offset = offset_after

    def next_add(self, offset: int) -> tuple[Record, int]:
        """The first ADD record at or after `offset` (read-behind reads items back this way)."""
        while True:
            record, offset_after = decode_at(self._reader, offset, self.size)
            if record.op == OP_ADD:
                return record, offset_after
            offset = offset_after

    # -- writing --------------------------------------------------------------------------------

    def append(self, record: bytes) -> int:
        """Write a record (straight to the kernel: no buffer to lose in a crash); its offset."""
        offset = self.size
        view = memoryview(record)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            self._truncate(offset)  # never leave half a record behind good ones
            raise
        self.size += len(record)
        self._written += len(record)
        return offset

    def _truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        self.size = size
        self._reader.reset(self._fd)

    def wait_durable(self) -> asyncio.Future | None:
        """With `--fsync always`: a future that is done when everything written so far is on
        disk (None if it already is, or if the policy does not wait)."""
        if self.fsync.mode != "always" or self._synced >= self._written:
            return None
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._durable_waiters.append((self._written, future))
        if not self._syncing and not self._start_pending:
            # Not at once: the other requests read in this turn of the loop join the batch.
            self._start_pending = True
            loop.call_soon(self._start_sync_for_waiters)
        return future

    def _start_sync_for_waiters(self) -> None:
        self._start_pending = False
        if not self._syncing and self._durable_waiters and not self.closed:
            self._start_sync()

    def sync_in_background(self) -> None:
        """For `--fsync every:MS`: start an fsync if there is anything to sync."""
        if self._synced < self._written and not self._syncing:
            self._start_sync()

    def _start_sync(self) -> None:
        self._syncing = True
        target, fd = self._written, self._fd
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(None, os.fsync, fd)
        done.add_done_callback(lambda finished: self._sync_finished(finished, target))

    def _sync_finished(self, finished: asyncio.Future, target: int) -> None:
        self._syncing = False
        for fd in self._retired_fds:
            os.close(fd)
        self._retired_fds.clear()
        error = finished.exception()
        if error is not None:
            log.error("journal %s: fsync failed: %s", self.path, error)
            while self._durable_waiters:  # nobody may hear STORED now
                _, future = self._durable_waiters.popleft()
                if not future.done():
                    future.set_exception(OSError(f"fsync failed: {error}"))
        else:
            self._synced = max(self._synced, target)
            self._resolve_durable_waiters()
        if self._sync_done_event is not None:
            self._sync_done_event.set()
        if self._durable_waiters and not self.closed:
            self._start_sync()  # the next group: everything written while this fsync ran

    def _resolve_durable_waiters(self) -> None:
        while self._durable_waiters and self._durable_waiters[0][0] <= self._synced:
            _, future = self._durable_waiters.popleft()
            if not future.done():
                future.set_result(None)

    def rewrite(self, records: Iterable[bytes]) -> None:
        """Compaction: replace the file with `records`, atomically (temp file, fsync, rename).

        A crash at any point leaves either the old journal or the new one, never a mix.
        """
        temp = self.path.with_name(self.path.name + TEMP_SUFFIX)
        size = 0
        with open(temp, "wb") as out:
            for record in records:
                out.write(record)
                size += len(record)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.path)
        # From here the new file is the journal: append to it even if the folder's fsync fails.
        old_fd, self._fd = self._fd, os.open(self.path, os.O_RDWR | os.O_APPEND)
        self._retire(old_fd)
        self.size = size
        self._reader.reset(self._fd)
        fsync_dir(self.path.parent)
        # The new file holds everything written so far, and it is on disk.
        self._synced = self._written
        self._resolve_durable_waiters()

    def _retire(self, fd: int) -> None:
        if self._syncing:
            self._retired_fds.append(fd)  # a worker thread is fsyncing it right now
        else:
            os.close(fd)

    async def _wait_for_sync(self) -> None:
        while self._syncing:
            self._sync_done_event = asyncio.Event()
            await self._sync_done_event.wait()

    async def close(self) -> None:
        """Sync (whatever the policy) and close: a clean stop loses nothing."""
        if self.closed:
            return
        await self._wait_for_sync()
        self.closed = True
        os.fsync(self._fd)
        self._synced = self._written
        self._resolve_durable_waiters()
        os.close(self._fd)

    def delete(self) -> None:
        """Close and remove the file, at once (a queue of the same name may be created next)."""
        if self.closed:
            return
        self.closed = True
        self._retire(self._fd)
        self.path.unlink(missing_ok=True)
        fsync_dir(self.path.parent)
        self._synced = self._written
        self._resolve_durable_waiters()
