"""What the fake Twitter knows: its mode, its latency, and the ledger of every accepted tweet.

Kept apart from the HTTP code so that the rules are readable in one place and every handler thread
shares one lock.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from lab.runtime.timescale import time_scale

# --8<-- [start:modes]
MODES = ("up", "slow", "down", "refuse", "hang", "flaky", "limited")
SLOW_FACTOR = 10  # `slow` multiplies the latency by this
RATE_LIMIT_SECONDS = 15  # `limited` asks every user to wait this long (story seconds, whole seconds)
MAX_TWEET_LENGTH = 280
# --8<-- [end:modes]
HANG_CHECK_SECONDS = 0.1  # how often a held request checks that its client is still there
FIRST_TWEET_ID = 1_860_000_000_000_000_001  # looks like a real tweet id, counts up from here


class ControlError(ValueError):
    """A bad value sent to the control endpoint or given on the command line."""


def parse_latency(value) -> tuple[int, int]:
    """`[lo, hi]`, `(lo, hi)` or the CLI's "lo-hi" (or a single "n"), in milliseconds."""
    if isinstance(value, str):
        lo, sep, hi = value.partition("-")
        value = [lo, hi if sep else lo]
    try:
        lo, hi = (int(part) for part in value)
    except (TypeError, ValueError):
        raise ControlError(f"latency_ms must be [lo, hi] in whole milliseconds, got {value!r}") from None
    if lo < 0 or hi < lo:
        raise ControlError(f"latency_ms must satisfy 0 <= lo <= hi, got [{lo}, {hi}]")
    return lo, hi


def parse_fail_rate(value) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ControlError(f"fail_rate must be a number from 0 to 1, got {value!r}") from None
    if not 0.0 <= rate <= 1.0:
        raise ControlError(f"fail_rate must be from 0 to 1, got {rate}")
    return rate


def parse_flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise ControlError(f"{name} must be true or false, got {value!r}")
    return value


def parse_retry_after(value) -> int | None:
    """Whole seconds for `limited`'s Retry-After (at least 1), or None for the story's own."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ControlError(f"retry_after must be a whole number of seconds, at least 1, or null, got {value!r}")
    return value


def parse_mode(value) -> str:
    if value not in MODES:
        raise ControlError(f"mode must be one of {', '.join(MODES)}, got {value!r}")
    return value


@dataclass
class Tweet:
    id: str
    user: str
    text: str
    received_at: str
    duplicate: bool  # the same user already had a tweet with exactly this text
    sender: str = ""  # the address it came from: which machine posted it, in the lab of hosts

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "user": self.user,
            "text": self.text,
            "received_at": self.received_at,
            "duplicate": self.duplicate,
            "sender": self.sender,
        }


@dataclass
class TwitterState:
    users: dict[str, str]  # username -> token
    mode: str = "up"
    latency_ms: tuple[int, int] = (1000, 2000)
    fail_rate: float = 0.3
    reject_duplicates: bool = False  # as Twitter did: the same text twice from one user is refused
    retry_after: int | None = None  # `limited`'s wait in whole seconds; None: RATE_LIMIT_SECONDS, scaled
    seed: int | None = None
    ledger: list[Tweet] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)  # by reason: down, flaky, refuse, ...
    held: int = 0  # requests waiting in `hang` right now
    received: int = 0  # every POST /2/tweets that reached the API, answered or not
    in_flight: int = 0  # of those, the ones not answered or dropped yet
    closing: bool = False

    def __post_init__(self) -> None:
        self.mode = parse_mode(self.mode)
        self.latency_ms = parse_latency(self.latency_ms)
        self.fail_rate = parse_fail_rate(self.fail_rate)
        self._random = random.Random(self.seed)
        self._changed = threading.Condition()
        self._seen: Counter = Counter()  # (user, text) -> how many accepted
        self._user_by_token = {token: name for name, token in self.users.items()}
        self._listeners: list = []

    # -- control ----------------------------------------------------------------------------

    def on_mode_change(self, listener) -> None:
        self._listeners.append(listener)

    def control(self, changes: dict) -> dict:
        """Apply a POST /_control body; all values are checked before any is applied."""
        unknown = set(changes) - {"mode", "latency_ms", "fail_rate", "reject_duplicates", "retry_after"}
        if unknown:
            raise ControlError(f"unknown control field(s): {', '.join(sorted(unknown))}")
        mode = parse_mode(changes["mode"]) if "mode" in changes else self.mode
        latency = parse_latency(changes["latency_ms"]) if "latency_ms" in changes else self.latency_ms
        rate = parse_fail_rate(changes["fail_rate"]) if "fail_rate" in changes else self.fail_rate
        reject = (
            parse_flag(changes["reject_duplicates"], "reject_duplicates")
            if "reject_duplicates" in changes
            else self.reject_duplicates
        )
        retry_after = parse_retry_after(changes["retry_after"]) if "retry_after" in changes else self.retry_after
        with self._changed:
            old_mode = self.mode
            self.mode, self.latency_ms, self.fail_rate = mode, latency, rate
            self.reject_duplicates, self.retry_after = reject, retry_after
            self._changed.notify_all()  # release requests held in `hang`
        if mode != old_mode:
            for listener in self._listeners:
                listener(old_mode, mode)
        return self.describe()

    def describe(self) -> dict:
        with self._changed:
            return {
                "mode": self.mode,
                "latency_ms": list(self.latency_ms),
                "fail_rate": self.fail_rate,
                "reject_duplicates": self.reject_duplicates,
                "retry_after": self.retry_after,
                "time_scale": time_scale(),
                "held": self.held,
            }

    def close(self) -> None:
        with self._changed:
            self.closing = True
            self._changed.notify_all()

    # -- what a request goes through --------------------------------------------------------

    def call_started(self) -> None:
        with self._changed:
            self.received += 1
            self.in_flight += 1

    def call_ended(self) -> None:
        with self._changed:
            self.in_flight -= 1

    def wait_out_hang(self, client_gone) -> str:
        """Hold the caller while the mode is `hang`; return the mode it changed to.

        A held request has not been processed yet, so a client that gives up meanwhile (its
        timeout, or its process killed) takes its request with it: that returns "abandoned".
        """
        with self._changed:
            if self.mode != "hang" or self.closing:
                return self.mode
            self.held += 1
            try:
                while self.mode == "hang" and not self.closing:
                    self._changed.wait(timeout=HANG_CHECK_SECONDS)
                    if client_gone():
                        self.rejected["abandoned"] += 1
                        return "abandoned"
                return self.mode
            finally:
                self.held -= 1

    def latency_seconds(self, mode: str) -> float:
        with self._changed:
            lo, hi = self.latency_ms
            millis = self._random.uniform(lo, hi)
        if mode == "slow":
            millis *= SLOW_FACTOR
        return millis / 1000.0 * time_scale()

    def fails_now(self, mode: str) -> bool:
        """Does this request get a 503? Always in `down`, at `fail_rate` in `flaky`."""
        with self._changed:
            failed = mode == "down" or (mode == "flaky" and self._random.random() < self.fail_rate)
            if failed:
                self.rejected[mode] += 1
            return failed

    def rate_limited_for(self, mode: str) -> int | None:
        """In `limited`, the whole seconds the caller must wait (a 429's Retry-After); else None."""
        if mode != "limited":
            return None
        with self._changed:
            self.rejected[mode] += 1
            chosen = self.retry_after
        return chosen or max(1, round(RATE_LIMIT_SECONDS * time_scale()))

    def count_rejection(self, reason: str) -> None:
        with self._changed:
            self.rejected[reason] += 1

    def user_for(self, token: str | None) -> str | None:
        return self._user_by_token.get(token or "")

    def accept(self, user: str, text: str, sender: str = "") -> Tweet | None:
        """Add the tweet to the ledger; None if it is a duplicate and duplicates are refused."""
        with self._changed:
            key = (user, text)
            if self.reject_duplicates and self._seen[key]:
                self.rejected["duplicate"] += 1
                return None
            tweet = Tweet(
                id=str(FIRST_TWEET_ID + len(self.ledger)),
                user=user,
                text=text,
                received_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                duplicate=self._seen[key] > 0,
                sender=sender,
            )
            self._seen[key] += 1
            self.ledger.append(tweet)
            return tweet

    # -- reading the ledger -----------------------------------------------------------------

    def ledger_json(self) -> list[dict]:
        with self._changed:
            return [tweet.as_json() for tweet in self.ledger]

    def stats(self) -> dict:
        with self._changed:
            return {
                "accepted": len(self.ledger),
                "duplicates": sum(1 for tweet in self.ledger if tweet.duplicate),
                "rejected": dict(self.rejected),
                "held": self.held,
                "received": self.received,
                "in_flight": self.in_flight,
                "mode": self.mode,
            }

    def reset(self) -> None:
        with self._changed:
            self.ledger.clear()
            self.rejected.clear()
            self.received = 0  # the calls still in flight stay counted there
            self._seen.clear()

    def users_json(self) -> list[dict]:
        return [{"username": name, "token": token} for name, token in self.users.items()]
