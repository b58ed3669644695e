"""What a queue holds: items, the ways to fetch one, open reads and waiting clients."""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Item:
    data: bytes
    add_time: int  # unix time in ms
    expiry: int  # unix time in ms; 0 = never

    def expired(self, now: int) -> bool:
        return self.expiry != 0 and self.expiry <= now


class Fetch(enum.Enum):
    TAKE = "take"  # plain get: the item leaves the queue at once (at-most-once)
    OPEN = "open"  # reliable read: the item is held for the client until close or abort
    PEEK = "peek"  # look at the head, leave it there


@dataclass(slots=True)
class OpenRead:
    item: Item
    client: int | None  # None: found open in the journal at start-up
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class Waiter:
    client: int
    how: Fetch
    future: asyncio.Future = field(repr=False)
