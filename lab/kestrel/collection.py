"""Every queue of one server: created on first use, found again on disk at start-up, fanout."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from functools import partial

from lab.kestrel.config import ServerConfig
from lab.kestrel.journal import TEMP_SUFFIX, Journal
from lab.kestrel.queue import PersistentQueue

log = logging.getLogger("lab.kestrel")

# Names become file names, so only a portable set is accepted (Kestrel forbade "/", "~", ".").
_NAME = re.compile(r"[A-Za-z0-9_+-]{1,200}")


def valid_queue_name(name: str) -> bool:
    if not _NAME.fullmatch(name):
        return False
    if "+" in name:  # fanout child "parent+child": both parts needed
        parent, _, child = name.partition("+")
        return bool(parent and child)
    return True


def expiry_from_exptime(exptime: int, now: int) -> int:
    """memcache `exptime` to unix ms: 0 never, below 1,000,000 seconds from now, else unix time."""
    if exptime == 0:
        return 0
    if exptime < 1_000_000:
        return now + exptime * 1000
    return exptime * 1000


class TooManyQueues(Exception):
    """A new queue would pass the server's --max-queues: refused, nothing created."""


class QueueCollection:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.queues: dict[str, PersistentQueue] = {}
        self.fanout: dict[str, set[str]] = {}  # parent name -> names of its children
        self.deleted_total_items = 0  # items ever added to the queues deleted since start-up

    def load(self) -> None:
        """Every journal in the data folder becomes a queue again."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.config.data_dir.iterdir()):
            if path.name.endswith(TEMP_SUFFIX):
                log.info("removing %s, left by a compaction that did not finish", path)
                path.unlink()
            elif path.is_file() and valid_queue_name(path.name):
                queue = self.get_or_create(path.name, loading=True)
                log.info("queue %s: %d items from the journal", queue.name, queue.items)

    def get(self, name: str) -> PersistentQueue | None:
        return self.queues.get(name)

    def get_or_create(self, name: str, loading: bool = False) -> PersistentQueue:
        """The queue of that name, created if new. Raises TooManyQueues past --max-queues, except
        for the journals already on disk when the server starts: none of those is ever dropped."""
        queue = self.queues.get(name)
        if queue is None:
            config = self.config
            if len(self.queues) >= config.max_queues and not loading:
                raise TooManyQueues(f"too many queues (the limit is {config.max_queues})")
            queue = PersistentQueue(name, config.data_dir, config.limits_for(name), config.fsync,
                                    config.max_memory, config.journal_compact_bytes)
            self.queues[name] = queue
            if "+" in name:
                self.fanout.setdefault(name.partition("+")[0], set()).add(name)
        return queue

    def add(self, name: str, data: bytes, add_time: int, expiry: int,
            done: Callable[[OSError | None], None]) -> list[Journal] | None:
        """Add to a queue and to its fanout children. None if the queue itself refused the item
        (NOT_STORED); else the journals it goes to (with `--fsync always`, the reply waits for
        them), and `done(error)` is called once every copy is written: with None, or with the
        error that kept the queue's own copy out."""
        queue = self.get_or_create(name)
        children = self.fanout.get(name)
        if not children:  # the usual case, kept short: it runs for every `set`
            return [queue.journal] if queue.add(data, add_time, expiry, done) else None
        copies = [queue] + [self.get_or_create(child) for child in sorted(children)]
        outcome = {"waiting": 0, "error": None}

        def one_written(own: bool, error: OSError | None) -> None:
            outcome["waiting"] -= 1
            if own:
                outcome["error"] = error
            if outcome["waiting"] == 0:
                done(outcome["error"])

        journals = []
        for copy in copies:
            outcome["waiting"] += 1
            if copy.add(data, add_time, expiry, partial(one_written, copy is queue)):
                journals.append(copy.journal)
            elif copy is queue:
                return None  # nothing added: the children are tried only after their parent
            else:
                outcome["waiting"] -= 1
                log.warning("queue %s is full: fanout copy from %s dropped", copy.name, name)
        return journals

    @property
    def total_items(self) -> int:
        """Items ever added since start-up, fanout copies included."""
        return self.deleted_total_items + sum(queue.total_items for queue in self.queues.values())

    def delete(self, name: str) -> asyncio.Future | None:
        """Delete a queue; the future is done once its journal's removal is on disk (None if there
        was no such queue). OSError if the journal cannot be removed: the queue then stays."""
        queue = self.queues.get(name)
        if queue is None:
            return None
        removed = queue.delete()
        del self.queues[name]
        self.deleted_total_items += queue.total_items
        if "+" in name:
            self.fanout.get(name.partition("+")[0], set()).discard(name)
        return removed

    def flush_all(self) -> None:
        for queue in self.queues.values():
            queue.flush()

    def wake_all_waiters(self) -> None:
        for queue in self.queues.values():
            queue.wake_all_waiters()

    async def close(self) -> None:
        for queue in self.queues.values():
            await queue.journal.close()

    def sync_in_background(self) -> None:
        for queue in self.queues.values():
            if not queue.journal.closed:
                queue.journal.sync_in_background()

    # -- stats ----------------------------------------------------------------------------------

    @property
    def curr_items(self) -> int:
        return sum(queue.items for queue in self.queues.values())

    @property
    def bytes(self) -> int:
        return sum(queue.bytes for queue in self.queues.values())

    def queue_stats(self) -> list[tuple[str, int]]:
        lines = []
        for name in sorted(self.queues):
            queue = self.queues[name]
            for key, value in (
                ("items", queue.items),
                ("bytes", queue.bytes),
                ("total_items", queue.total_items),
                ("logsize", queue.journal.size),
                ("expired_items", queue.expired_items),
                ("mem_items", len(queue.memory)),
                ("mem_bytes", queue.mem_bytes),
                ("age", queue.age_ms),
                ("discarded", queue.discarded),
                ("waiters", sum(1 for w in queue.waiters if not w.future.done())),
                ("open_transactions", len(queue.open_reads)),
                ("transactions", queue.transactions),
                ("canceled_transactions", queue.canceled_transactions),
            ):
                lines.append((f"queue_{name}_{key}", value))
        return lines
