"""One persistent FIFO queue: items, reliable reads, waiters, expiry, limits and read-behind.

Every change is written to the journal first and applied in memory second, so a failed write
(a full disk) changes nothing. A new item is written at the end of the event loop's turn, with
the others of that turn (`Journal.append_soon`): until then it is not in the queue, and its
`set` is not answered. Start-up replays the journal through the same code paths.

Read-behind: the queue keeps at most `max_memory` bytes of items in memory. Once the head part
is full, newly added items live only in the journal (`behind_count` of them, starting with the
ADD record at `behind_offset`); as the head drains they are read back from the file, in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path

from lab.kestrel.config import FsyncPolicy, QueueLimits
from lab.kestrel.items import Fetch, Item, OpenRead, Waiter, now_ms
from lab.kestrel.journal import Journal
from lab.kestrel.records import (
    ADD_OVERHEAD,
    OP_ADD,
    OP_CONFIRM_REMOVE,
    OP_REMOVE,
    OP_REMOVE_TENTATIVE,
    OP_UNREMOVE,
    REMOVE_RECORD,
    compacted_records,
    encode_add,
    encode_xid,
)

log = logging.getLogger("lab.kestrel.queue")

# After a failed compaction (a full disk, say) the journal stays as it is, and is tried again
# this many seconds later: the request that triggered it has done its work and is answered.
COMPACT_RETRY_SECONDS = 30.0


class PersistentQueue:
    def __init__(self, name: str, data_dir: Path, limits: QueueLimits, fsync: FsyncPolicy,
                 max_memory: int, journal_compact_bytes: int):
        self.name = name
        self.limits = limits
        self.max_memory = max_memory
        self.journal_compact_bytes = journal_compact_bytes
        self.journal = Journal(data_dir / name, fsync)
        self.memory: deque[Item] = deque()  # the head of the queue
        self.mem_bytes = 0
        self.behind_count = 0  # items after the head that are only in the journal
        self.behind_bytes = 0
        self.behind_offset = 0  # offset of the first of them in the journal
        self.adding = 0  # items whose record waits for the end of the turn, and their bytes
        self.adding_bytes = 0
        self.open_reads: dict[int, OpenRead] = {}  # by xid
        self.open_by_client: dict[int | None, deque[int]] = {}  # xids, oldest first
        self.next_xid = 1
        self.waiters: deque[Waiter] = deque()
        self.deleted = False
        self.compact_retry_at = 0.0  # monotonic time: no compaction attempt before it
        self.compacting: asyncio.Task | None = None
        # Stats.
        self.total_items = 0
        self.expired_items = 0
        self.discarded = 0
        self.transactions = 0
        self.canceled_transactions = 0
        self.age_ms = 0
        self._replay()

    # -- sizes ----------------------------------------------------------------------------------

    @property
    def items(self) -> int:
        return len(self.memory) + self.behind_count

    @property
    def bytes(self) -> int:
        return self.mem_bytes + self.behind_bytes

    def open_count(self, client: int) -> int:
        return len(self.open_by_client.get(client, ()))

    # -- the head and the tail, in memory and behind ----------------------------------------------

    def _push_tail(self, item: Item, offset: int) -> None:
        size = len(item.data)
        # The head always holds at least one item, and nothing may overtake the items behind.
        if self.behind_count == 0 and (not self.memory or self.mem_bytes + size <= self.max_memory):
            self.memory.append(item)
            self.mem_bytes += size
        else:
            if self.behind_count == 0:
                self.behind_offset = offset
            self.behind_count += 1
            self.behind_bytes += size

    def _push_head(self, item: Item) -> None:
        self.memory.appendleft(item)
        self.mem_bytes += len(item.data)

    def _pop_head(self) -> Item:
        item = self.memory.popleft()
        self.mem_bytes -= len(item.data)
        self._read_behind()
        return item

    def _read_behind(self) -> None:
        """Refill the head from the journal while it has room."""
        while self.behind_count:
            record, offset_after = self.journal.next_add(self.behind_offset)
            size = len(record.data)
            if self.memory and self.mem_bytes + size > self.max_memory:
                return
            self.memory.append(Item(record.data, record.add_time, record.expiry))
            self.mem_bytes += size
            self.behind_count -= 1
            self.behind_bytes -= size
            self.behind_offset = offset_after

    # -- start-up -------------------------------------------------------------------------------

    def _replay(self) -> None:
        for record in self.journal.replay():
            if record.op == OP_ADD:
                self._push_tail(Item(record.data, record.add_time, record.expiry), record.offset)
                continue
            if record.op in (OP_REMOVE, OP_REMOVE_TENTATIVE) and not self.memory:
                log.warning("queue %s: %s on an empty queue in the journal; ignored",
                            self.name, "REMOVE" if record.op == OP_REMOVE else "REMOVE_TENTATIVE")
                continue
            if record.op == OP_REMOVE:
                self._pop_head()
                continue
            self.next_xid = max(self.next_xid, record.xid + 1)
            if record.op == OP_REMOVE_TENTATIVE:
                self.open_reads[record.xid] = OpenRead(self._pop_head(), None)
            elif record.xid not in self.open_reads:
                log.warning("queue %s: unknown xid %d in the journal; ignored", self.name, record.xid)
            elif record.op == OP_CONFIRM_REMOVE:
                del self.open_reads[record.xid]
            else:  # OP_UNREMOVE
                self._push_head(self.open_reads.pop(record.xid).item)
        # Reads that were open when the server stopped go back to the head, oldest first.
        for xid in sorted(self.open_reads, reverse=True):
            self.journal.append(encode_xid(OP_UNREMOVE, xid))
            self._push_head(self.open_reads.pop(xid).item)
        self.maybe_compact()

    # -- adding ---------------------------------------------------------------------------------

    def is_full_for(self, size: int) -> bool:
        limits = self.limits
        return ((limits.max_items is not None and self.items + self.adding + 1 > limits.max_items)
                or (limits.max_size is not None
                    and self.bytes + self.adding_bytes + size > limits.max_size))

    def add(self, data: bytes, add_time: int, expiry: int, done: Callable[[OSError | None], None]) -> bool:
        """Append an item; False (NOT_STORED) if it is too big or the queue is full. Else its
        record is written at the end of the loop's turn, and then the item joins the queue and
        `done(None)` is called; or `done(error)`, and the queue is as it was."""
        limits = self.limits
        if len(data) > limits.max_item_size:
            return False
        if limits.max_size is not None and len(data) > limits.max_size:
            return False
        if limits.max_age is not None:
            cap = add_time + int(limits.max_age * 1000)
            expiry = cap if expiry == 0 else min(expiry, cap)
        if self.memory and self.memory[0].expiry:
            self._discard_expired_head(add_time)
        if (limits.max_items is not None or limits.max_size is not None) and self.is_full_for(len(data)):
            if not limits.discard_old_when_full:
                return False
            while self.items and self.is_full_for(len(data)):
                self.journal.append(REMOVE_RECORD)
                self._pop_head()
                self.discarded += 1
            if self.is_full_for(len(data)):  # e.g. max_items 0
                return False
        item = Item(data, add_time, expiry)
        self.adding += 1
        self.adding_bytes += len(data)
        self.journal.append_soon(encode_add(add_time, expiry, data), partial(self._added, item), done)
        return True

    def _added(self, item: Item, offset: int, error: OSError | None) -> None:
        """The item's record is in the journal (or failed to be): it joins the queue."""
        self.adding -= 1
        self.adding_bytes -= len(item.data)
        if error is None and not self.deleted:
            self._push_tail(item, offset)
            self.total_items += 1
            if self.waiters:
                self._serve_waiters()

    # -- taking ---------------------------------------------------------------------------------

    def _discard_expired_head(self, now: int) -> None:
        while self.memory and self.memory[0].expired(now):
            self.journal.append(REMOVE_RECORD)
            self._pop_head()
            self.expired_items += 1

    def fetch(self, client: int, how: Fetch) -> Item | None:
        """The head item (taken, opened for `client`, or peeked), or None if there is none."""
        now = now_ms()
        self._discard_expired_head(now)
        if not self.memory:
            return None
        item = self.memory[0]
        if how is Fetch.PEEK:
            return item
        if how is Fetch.OPEN:
            xid = self.next_xid
            self.journal.append(encode_xid(OP_REMOVE_TENTATIVE, xid))
            self.next_xid += 1
            self._pop_head()
            self._register_open(xid, item, client)
        else:
            self.journal.append(REMOVE_RECORD)
            self._pop_head()
        self.age_ms = max(0, now - item.add_time)
        self.maybe_compact()
        return item

    def _register_open(self, xid: int, item: Item, client: int) -> None:
        read = OpenRead(item, client)
        if self.limits.open_timeout is not None:
            read.timer = asyncio.get_running_loop().call_later(
                self.limits.open_timeout, self._open_timed_out, xid)
        self.open_reads[xid] = read
        self.open_by_client.setdefault(client, deque()).append(xid)
        self.transactions += 1

    def add_waiter(self, client: int, how: Fetch) -> Waiter:
        waiter = Waiter(client, how, asyncio.get_running_loop().create_future())
        self.waiters.append(waiter)
        return waiter

    def forget_waiter(self, waiter: Waiter) -> None:
        try:
            self.waiters.remove(waiter)
        except ValueError:
            pass  # already served

    def _serve_waiters(self) -> None:
        """Hand items to waiting clients, first come first served."""
        while self.waiters and not self.deleted:
            waiter = self.waiters[0]
            if waiter.future.done():  # timed out or its client went away
                self.waiters.popleft()
                continue
            item = self.fetch(waiter.client, waiter.how)
            if item is None:
                return
            self.waiters.popleft()
            waiter.future.set_result(item)

    def wake_all_waiters(self) -> None:
        """Delete and shutdown: every waiter gets END."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_result(None)

    # -- reliable reads -------------------------------------------------------------------------

    def _pop_open(self, client: int | None, xid: int | None = None) -> tuple[int, OpenRead] | None:
        xids = self.open_by_client.get(client)
        if not xids:
            return None
        if xid is None:
            xid = xids.popleft()
        else:
            xids.remove(xid)
        if not xids:
            del self.open_by_client[client]
        read = self.open_reads.pop(xid)
        if read.timer is not None:
            read.timer.cancel()
        return xid, read

    def close_oldest(self, client: int) -> None:
        """`/close`: this client's oldest open read is done with; ignored if there is none."""
        popped = self._pop_open(client)
        if popped is not None:
            self.journal.append(encode_xid(OP_CONFIRM_REMOVE, popped[0]))
            self.maybe_compact()

    def _unremove(self, xid: int, read: OpenRead) -> None:
        self.journal.append(encode_xid(OP_UNREMOVE, xid))
        self._push_head(read.item)
        self.canceled_transactions += 1

    def abort_oldest(self, client: int) -> None:
        """`/abort`: this client's oldest open read goes back to the head."""
        popped = self._pop_open(client)
        if popped is not None:
            self._unremove(*popped)
            self._serve_waiters()

    def roll_back(self, client: int) -> None:
        """The client is gone: all its open reads go back to the head, in their order."""
        xids = self.open_by_client.get(client)
        while xids:
            self._unremove(*self._pop_open(client, xids[-1]))  # newest first: oldest ends on top
        self._serve_waiters()

    def _open_timed_out(self, xid: int) -> None:
        read = self.open_reads.get(xid)
        if read is None or self.deleted:
            return
        log.info("queue %s: open read %d timed out; back to the head", self.name, xid)
        read.timer = None
        self._unremove(*self._pop_open(read.client, xid))
        self._serve_waiters()

    # -- clearing -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Drop every waiting item (open reads stay open): one REMOVE record each, in one write,
        so a full disk drops nothing (OSError); compaction reclaims the space later."""
        self.journal.write_waiting()  # the items set before the flush are flushed too
        if self.items:
            self.journal.append(REMOVE_RECORD * self.items)
        self.memory.clear()
        self.mem_bytes = self.behind_count = self.behind_bytes = 0
        self.maybe_compact()

    def delete(self) -> asyncio.Future:
        """Wake every waiter and remove the journal; the future is done once that is on disk.
        Raises OSError, and changes nothing, if the journal cannot be removed."""
        removed = self.journal.delete()
        self.deleted = True
        self.wake_all_waiters()
        for read in self.open_reads.values():
            if read.timer is not None:
                read.timer.cancel()
        self.open_reads.clear()
        self.open_by_client.clear()
        self.memory.clear()
        self.mem_bytes = self.behind_count = self.behind_bytes = 0
        return removed

    # -- compaction -----------------------------------------------------------------------------

    def maybe_compact(self) -> None:
        """Start rewriting the journal when it is big and mostly dead: the queue is empty, or the
        file is more than 4x what its live items and open reads need. It is written in a worker
        thread; requests go on being answered meanwhile."""
        if (self.compacting or self.behind_count or self.deleted
                or self.journal.size < self.journal_compact_bytes):
            return
        live = (self.mem_bytes + ADD_OVERHEAD * len(self.memory)
                + sum(len(read.item.data) + ADD_OVERHEAD + 9 for read in self.open_reads.values()))
        if self.memory or self.open_reads:
            if self.journal.size <= 4 * live:
                return
        if time.monotonic() < self.compact_retry_at:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # only a running server compacts
        self.compacting = loop.create_task(self.compact())

    async def compact(self) -> None:
        """Rewrite the journal with the open reads and the waiting items, as they are when it
        starts; what happens meanwhile is appended to the old file and copied after them. A
        failure (a full disk, say) is logged and tried again later: the old journal still holds
        the truth."""
        try:
            if self.behind_count or self.deleted:  # items behind are read back by offset
                return
            before = self.journal.size
            opens = [(xid, self.open_reads[xid].item) for xid in sorted(self.open_reads)]
            shift = await self.journal.rewrite(compacted_records(opens, list(self.memory)))
        except OSError as error:
            self.compact_retry_at = time.monotonic() + COMPACT_RETRY_SECONDS
            log.error("queue %s: journal compaction failed (%s); tried again in %.0f s",
                      self.name, error, COMPACT_RETRY_SECONDS)
            return
        finally:
            self.compacting = None
        if shift is None:  # deleted or shut down meanwhile
            return
        if self.behind_count:  # items that went behind meanwhile are in the copied part
            self.behind_offset -= shift
        log.info("queue %s: journal compacted from %d to %d bytes", self.name, before, self.journal.size)

