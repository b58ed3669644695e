"""The journal: an append-only file per queue, holding every change before it is acknowledged.

Its records are in records.py. Appends go straight to the kernel, on the event loop. A new
item's record waits for the end of the loop's turn (`append_soon`), so that every item added in
that turn goes in one write, as Redis writes its log once per turn: a write costs more than all
the rest of a `set`. What can take long runs in a worker thread while the loop goes on
answering: a big or slow fsync, compaction (`rewrite`) and removing a deleted queue's file.

Durability (`--fsync`): with `always`, a writer waits for `when_durable`. One fsync runs at a
time; every record written while it runs waits for the next one, so a hundred concurrent writers
share one fsync instead of queueing for a hundred ("group commit"). The fsync of a batch starts
at the end of the event loop's turn, not at the first writer, so it holds every record that
turn wrote.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from lab.kestrel import files
from lab.kestrel.config import FsyncPolicy
from lab.kestrel.files import fsync_dir, sync_file
from lab.kestrel.records import OP_ADD, CorruptRecord, ReadWindow, Record, decode_at

log = logging.getLogger("lab.kestrel.journal")

TEMP_SUFFIX = "~~"  # Kestrel's suffix too: queue names may not contain "~"
# An fsync runs on the event loop when it has at most this many bytes to write and fsyncs have
# been quick: then it costs less than the two thread switches of handing it to a thread, as
# Redis, which fsyncs on its event loop, shows. A bigger or slower one runs in a thread.
INLINE_SYNC_BYTES = 256 * 1024
INLINE_SYNC_SECONDS = 0.001
# Compaction copies the records appended while it wrote the new file, in rounds in a thread,
# until what is left is this small (or after TAIL_ROUNDS). Then a last round: records appended
# during it are acknowledged only after the switch, so the loop never fsyncs at the switch.
SMALL_TAIL_BYTES = 64 * 1024
TAIL_ROUNDS = 4

Durable = Callable[[OSError | None], None]  # called with None once on disk, or with the error
Written = Callable[[int, OSError | None], None]  # called with the record's offset, or the error


class Journal:
    def __init__(self, path: Path, fsync: FsyncPolicy):
        self.path = path
        self.fsync = fsync
        created = not path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        if created and fsync.mode == "always":
            fsync_dir(path.parent)  # the new file's name is on disk before its first item is STORED
        self.size = os.fstat(self._fd).st_size
        self._reader = ReadWindow(self._fd)
        # Bytes ever appended and bytes known to be on disk: counted across compactions.
        self._written = 0
        self._synced = 0
        self._syncing = False
        self._start_pending = False  # an fsync will start at the end of this loop turn
        self._sync_seconds = 0.0  # how long an fsync takes, a running average
        # Compaction replaces the file: an fsync of the old one that ends later counts for nothing,
        # and until the folder is synced the switch itself is not durable.
        self._generation = 0
        self._folder_unsynced = False
        # While a compaction runs, records appended after its snapshot are not acknowledged
        # (bytes written up to this point are): they reach the new file only at the switch.
        self._acknowledge_up_to: float = math.inf
        # Writers waiting for their record to be on disk: (bytes written up to it, callback).
        self._durable_waiters: deque[tuple[int, Durable]] = deque()
        # Records for `append_soon`, written together at the end of the loop's turn.
        self._soon: list[tuple[bytes, Written, Durable]] = []
        self._threads = 0  # worker threads using this journal's files right now
        self._retired_fds: list[int] = []  # closed once no thread uses them
        self._threads_done: asyncio.Event | None = None
        self.rewriting = False
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
        try:
            written = os.write(self._fd, record)
            if written < len(record):  # a short write: rare, on a nearly full disk
                files.write_all(self._fd, memoryview(record)[written:])
        except OSError:
            self._truncate(offset)  # never leave half a record behind good ones
            raise
        self.size += len(record)
        self._written += len(record)
        return offset

    def append_soon(self, record: bytes, written: Written, then: Durable) -> None:
        """Write `record` at the end of this turn of the event loop, in one write with every other
        record given to `append_soon` in the turn. Then `written(offset, None)`, or
        `written(0, error)` if the write failed (none of them is then in the file), and after
        it `then(error)`, which answers the client."""
        if not self._soon:
            asyncio.get_running_loop().call_soon(self._write_at_turn_end)
        self._soon.append((record, written, then))

    def _write_at_turn_end(self) -> None:
        thens = self._write_batch()
        for then, error in thens:
            then(error)

    def write_waiting(self) -> None:
        """Write the records `append_soon` holds now, before a change that must come after them (a
        flush, a delete, a stop). Their clients hear on the loop's next step, so that no request
        is answered in the middle of that change."""
        loop = asyncio.get_running_loop()
        for then, error in self._write_batch():
            loop.call_soon(then, error)

    def _write_batch(self) -> list[tuple[Durable, OSError | None]]:
        """Write the records `append_soon` holds, in one write; their `then` callbacks, to call."""
        if not self._soon:
            return []
        batch, self._soon = self._soon, []
        try:
            if self.closed:
                raise OSError(f"journal {self.path.name} is closed")
            offset = self.append(b"".join(record for record, _, _ in batch))
        except OSError as error:
            for _, written, _ in batch:
                written(0, error)
            return [(then, error) for _, _, then in batch]
        for record, written, _ in batch:
            written(offset, None)
            offset += len(record)
        return [(then, None) for _, _, then in batch]

    def _truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        self.size = size
        self._reader.reset(self._fd)

    # -- durability -----------------------------------------------------------------------------

    def when_durable(self, callback: Durable) -> bool:
        """With `--fsync always`: call `callback` once everything written so far is on disk.
        False, and no call, if there is nothing to wait for (or the policy does not wait)."""
        if self.fsync.mode != "always" or min(self._synced, self._acknowledge_up_to) >= self._written:
            return False
        self._durable_waiters.append((self._written, callback))
        self._schedule_sync()
        return True

    def wait_durable(self) -> asyncio.Future | None:
        """`when_durable` as a future (None if there is nothing to wait for)."""
        future = asyncio.get_running_loop().create_future()

        def done(error: OSError | None) -> None:
            if not future.done():
                future.set_result(None) if error is None else future.set_exception(error)

        return future if self.when_durable(done) else None

    def _schedule_sync(self) -> None:
        if not self._syncing and not self._start_pending:
            # Not at once: the other requests read in this turn of the loop join the batch.
            self._start_pending = True
            asyncio.get_running_loop().call_soon(self._start_sync_for_waiters)

    def _start_sync_for_waiters(self) -> None:
        self._start_pending = False
        if not self._syncing and self._sync_wanted():
            self._start_sync()

    def _sync_wanted(self) -> bool:
        """Is a writer waiting for a record that no fsync has covered yet? (During a compaction,
        writers whose records are synced wait for the switch instead.)"""
        return bool(self._durable_waiters) and self._durable_waiters[-1][0] > self._synced and not self.closed

    def sync_in_background(self) -> None:
        """For `--fsync every:MS`, and after a compaction: an fsync in a thread, if one is due."""
        due = self._synced < self._written or self._folder_unsynced
        if due and not self._syncing and not self.closed:
            self._start_sync(in_thread=True)

    def _start_sync(self, in_thread: bool = False) -> None:
        self._syncing = True
        target, fd, generation, folder = self._written, self._fd, self._generation, self._folder_unsynced
        if (not in_thread and not folder and target - self._synced <= INLINE_SYNC_BYTES
                and self._sync_seconds < INLINE_SYNC_SECONDS):
            self._sync_finished(target, generation, folder, self._timed_sync(fd, folder))
            return
        self._in_thread(self._timed_sync, fd, folder).add_done_callback(
            lambda done: self._sync_finished(target, generation, folder, done.result()))

    def _timed_sync(self, fd: int, folder: bool) -> OSError | None:
        """Sync the folder (if asked) and the file, keeping a running average of the time it
        takes; the error, if any."""
        started = time.perf_counter()
        try:
            if folder:
                fsync_dir(self.path.parent)
            sync_file(fd)
        except OSError as error:
            return error
        finally:
            self._sync_seconds += (time.perf_counter() - started - self._sync_seconds) / 8
        return None

    def _sync_finished(self, target: int, generation: int, folder: bool, error: OSError | None) -> None:
        self._syncing = False
        if generation != self._generation:
            pass  # it synced a file compaction has replaced; the next fsync covers the new one
        elif error is not None:
            log.error("journal %s: fsync failed: %s", self.path, error)
            while self._durable_waiters:  # nobody may hear STORED now
                self._durable_waiters.popleft()[1](OSError(f"fsync failed: {error}"))
        else:
            self._synced = max(self._synced, target)
            if folder:
                self._folder_unsynced = False
            self._resolve_durable_waiters()
        if self._sync_wanted():
            self._schedule_sync()  # the next group: everything written while this fsync ran

    def _resolve_durable_waiters(self) -> None:
        durable = min(self._synced, self._acknowledge_up_to)
        while self._durable_waiters and self._durable_waiters[0][0] <= durable:
            self._durable_waiters.popleft()[1](None)

    # -- worker threads -------------------------------------------------------------------------

    def _in_thread(self, function, *args) -> asyncio.Future:
        """Run `function(*args)` in a worker thread; no file it uses is closed until it returns."""
        self._threads += 1
        done = asyncio.get_running_loop().run_in_executor(None, function, *args)
        done.add_done_callback(self._thread_finished)
        return done

    def _thread_finished(self, _done: asyncio.Future) -> None:
        self._threads -= 1
        if self._threads == 0:
            for fd in self._retired_fds:
                files.close_in_thread(fd)
            self._retired_fds.clear()
            if self._threads_done is not None:
                self._threads_done.set()

    def _retire(self, fd: int) -> None:
        if self._threads:
            self._retired_fds.append(fd)  # a worker thread may be using it right now
        else:
            files.close_in_thread(fd)

    async def _wait_for_threads(self) -> None:
        while self._threads or self.rewriting:
            self._threads_done = asyncio.Event()
            await self._threads_done.wait()

    def _temp_path(self) -> Path:
        """A file name of its own (a queue deleted and made again may compact twice at once);
        start-up removes any that are left."""
        return self.path.with_name(f"{self.path.name}~{secrets.token_hex(4)}{TEMP_SUFFIX}")

    # -- compaction -----------------------------------------------------------------------------

    async def rewrite(self, records: Iterable[bytes]) -> int | None:
        """Compaction: replace the file with `records`, the queue's state as it is now, followed by
        every record appended from now until the switch. `records` is read in a worker thread,
        so it must not look at anything the loop changes meanwhile.

        Returns how far the offsets of the records appended meanwhile moved back, or None if the
        journal was closed meanwhile. Raises OSError if the new file cannot be written: the old
        one then stays, whole. A crash at any point leaves the old journal or the new one.
        """
        start = self.size
        temp = self._temp_path()
        self.rewriting = True
        new_fd = None
        try:
            new_fd, snapshot_size = await self._in_thread(files.write_new_file, temp, records)
            copied = start  # the new file holds (and has on disk) the old one's records up to here
            for _ in range(TAIL_ROUNDS):
                if self.closed or self.size - copied <= SMALL_TAIL_BYTES:
                    break
                end = self.size
                await self._in_thread(files.copy_range, self._fd, new_fd, copied, end, True)
                copied = end
            self._acknowledge_up_to = self._written  # the last round
            if not self.closed and self.size > copied:
                end = self.size
                await self._in_thread(files.copy_range, self._fd, new_fd, copied, end, True)
                copied = end
            if self.closed:
                return None
            # From here to the switch, on the loop: nothing is appended meanwhile. No record
            # copied now has been acknowledged, so none needs an fsync before the rename.
            files.copy_range(self._fd, new_fd, copied, self.size, False)
            os.replace(temp, self.path)
            shift = start - snapshot_size
            old_fd, self._fd, new_fd = self._fd, new_fd, None
            self._retire(old_fd)
            self.size -= shift
            self._reader.reset(self._fd)
            self._generation += 1
            # What clients were told is on disk is on disk in the new file as in the old, and a
            # crash before the folder's sync leaves the old one. The next fsync syncs the folder
            # and the new file, and acknowledges what was held back.
            self._synced = min(self._synced, self._acknowledge_up_to)
            self._folder_unsynced = True
            self.sync_in_background()
            return shift
        finally:
            self.rewriting = False
            self._acknowledge_up_to = math.inf
            if self._durable_waiters and not self.closed:
                self._resolve_durable_waiters()  # abandoned: the old file's fsyncs count again
                self._schedule_sync()
            if new_fd is not None:  # the switch did not happen
                os.close(new_fd)
                temp.unlink(missing_ok=True)
            if self._threads_done is not None:
                self._threads_done.set()

    # -- closing --------------------------------------------------------------------------------

    async def close(self) -> None:
        """Sync (whatever the policy) and close: a clean stop loses nothing."""
        if self.closed:
            return
        self.write_waiting()
        self.closed = True  # a compaction going on stops at its next step
        await self._wait_for_threads()
        if self._folder_unsynced:
            fsync_dir(self.path.parent)
        sync_file(self._fd)
        self._synced = self._written
        self._resolve_durable_waiters()
        os.close(self._fd)

    def delete(self) -> asyncio.Future:
        """Remove the file: out of the way at once (a queue of the same name may be created next),
        then unlinked, and its folder synced, in a thread. The future is done when the removal
        is on disk. Raises OSError, and changes nothing, if the file cannot be moved."""
        grave = self._temp_path()
        self.write_waiting()  # the items set before this delete are answered STORED, then deleted
        os.replace(self.path, grave)
        self.closed = True
        self._retire(self._fd)
        # Every writer waiting hears STORED, those held for a compaction's switch too: their
        # `set` came before this delete, and the compaction will not switch now.
        self._synced = self._written
        self._acknowledge_up_to = math.inf
        self._resolve_durable_waiters()
        return self._in_thread(files.remove_for_good, grave)

