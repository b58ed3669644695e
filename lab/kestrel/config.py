"""Settings of one server: how hard to sync the journal, and the limits every queue gets."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

MiB = 1024 * 1024


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class FsyncPolicy:
    """When journal writes reach the disk.

    - `always`: a `set` is answered only after its record is on disk (group commit keeps it fast);
    - `every`: a background fsync every `interval_ms`: a power cut can lose the last interval,
      a crash of the server process cannot (every record is already in the kernel);
    - `never`: the operating system decides when.
    """

    mode: str  # "always", "every" or "never"
    interval_ms: int = 0

    @classmethod
    def parse(cls, text: str) -> "FsyncPolicy":
        text = text.strip().lower()
        if text in ("always", "never"):
            return cls(text)
        match = re.fullmatch(r"every[: ]?(\d+)(ms)?", text)
        if match and int(match.group(1)) > 0:
            return cls("every", int(match.group(1)))
        raise ConfigError(f"fsync policy must be always, every:MS or never, got {text!r}")

    def __str__(self) -> str:
        return f"every:{self.interval_ms}" if self.mode == "every" else self.mode


@dataclass(frozen=True)
class QueueLimits:
    """Limits that every queue gets. None means no limit."""

    max_items: int | None = None
    max_size: int | None = None  # bytes of items waiting in the queue
    max_item_size: int = 1 * MiB  # memcached's default largest item
    discard_old_when_full: bool = False
    max_age: float | None = None  # seconds; caps every item's expiry
    open_timeout: float | None = None  # seconds before an open read is aborted for the client


def _flag(text: str) -> bool:
    if text.lower() in ("true", "yes", "on", "1"):
        return True
    if text.lower() in ("false", "no", "off", "0"):
        return False
    raise ConfigError(f"expected true or false, got {text!r}")


def _positive(convert):
    def parse(text: str):
        value = convert(text)
        if not value > 0:
            raise ConfigError(f"expected a positive value, got {text!r}")
        return value
    return parse


_LIMIT_PARSERS = {
    "max_items": _positive(int),
    "max_size": lambda text: _positive(int)(parse_bytes(text)),
    "max_item_size": lambda text: _positive(int)(parse_bytes(text)),
    "discard_old_when_full": _flag,
    "max_age": _positive(float),
    "open_timeout": _positive(float),
}


def queue_limits_override(text: str, defaults: QueueLimits) -> tuple[str, QueueLimits]:
    """`NAME:KEY=VALUE[,KEY=VALUE...]`, e.g. `tweets:max_items=100000,max_age=86400`: one queue's
    limits, the defaults with these changes (a fanout queue `NAME+child` gets its parent's)."""
    name, colon, settings = text.partition(":")
    if not name or not colon or not settings or any(c in name for c in " /+"):
        raise ConfigError(f"expected NAME:KEY=VALUE[,KEY=VALUE...], got {text!r}")
    changes = {}
    for setting in settings.split(","):
        key, equals, value = setting.partition("=")
        key = key.strip().replace("-", "_")
        if key not in _LIMIT_PARSERS or not equals:
            known = ", ".join(f.name for f in fields(QueueLimits))
            raise ConfigError(f"unknown queue limit {setting!r} in {text!r} (known: {known})")
        try:
            changes[key] = _LIMIT_PARSERS[key](value.strip())
        except ValueError as error:
            raise ConfigError(f"{key}: {error}") from None
    return name, replace(defaults, **changes)


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 22133
    fsync: FsyncPolicy = field(default_factory=lambda: FsyncPolicy("always"))
    limits: QueueLimits = field(default_factory=QueueLimits)
    queue_limits: dict[str, QueueLimits] = field(default_factory=dict)  # by queue name: overrides
    # Per queue: items beyond this many bytes stay in the journal until the queue drains.
    max_memory: int = 128 * MiB
    max_open_reads: int = 100  # per connection and queue
    max_connections: int = 1024
    # Each queue holds an open journal file: a client naming queue after queue must not use up
    # the server's file descriptors (and with them every other client's connections).
    max_queues: int = 512
    idle_timeout: float | None = None  # seconds without a request before a client is dropped
    # A journal over this size is rewritten when its queue is empty or it is 4x its live data.
    journal_compact_bytes: int = 16 * MiB

    def limits_for(self, queue: str) -> QueueLimits:
        """The queue's own limits, else its fanout parent's, else every queue's."""
        parent = queue.partition("+")[0]
        return self.queue_limits.get(queue) or self.queue_limits.get(parent) or self.limits

    @property
    def largest_item_size(self) -> int:
        return max([self.limits.max_item_size] + [limits.max_item_size for limits in self.queue_limits.values()])


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": MiB, "mb": MiB,
               "mib": MiB, "g": 1024 * MiB, "gb": 1024 * MiB, "gib": 1024 * MiB}


def parse_bytes(text: str) -> int:
    """`1048576`, `64k`, `1MiB`, `2G`: a size in bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ConfigError(f"not a size in bytes: {text!r} (examples: 1048576, 64KiB, 128MiB)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
