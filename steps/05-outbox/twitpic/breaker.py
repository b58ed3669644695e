"""A circuit breaker whose state lives in Redis, shared by every worker process.

RQ runs each job in a freshly forked process, so a breaker kept in memory would start closed,
with no failures counted, for every single job: it would never trip. Counting in Redis makes the
failures of all workers add up.

closed:    calls go through; each failure is counted, and `threshold` failures within `window`
           seconds, with no success between them, open the breaker.
open:      for `cooldown` seconds no call is made at all: a job that meets the open breaker
           waits, as a retry due when the cool-down ends.
half-open: after the cool-down, one call (the trial) may test Twitter while the others wait. If
           it works, the breaker closes; if it fails, the breaker opens again at once. Only the
           trial's answer counts: a call that started before the breaker opened and ends late
           changes nothing.
"""

from __future__ import annotations

import redis


class CircuitOpen(Exception):
    pass


# --8<-- [start:breaker]
class CircuitBreaker:
    def __init__(
        self, connection: redis.Redis, name: str, threshold: int, window: float, cooldown: float, trial: float
    ):
        self.redis = connection
        self.failures_key = f"breaker:{name}:failures"
        self.open_key = f"breaker:{name}:open"  # exists while open: Redis expires it after the cool-down
        self.tripped_key = f"breaker:{name}:tripped"  # exists from opening until a trial call works
        self.trial_key = f"breaker:{name}:trial"  # exists while the one trial call is under way
        self.threshold, self.window, self.cooldown, self.trial = threshold, window, cooldown, trial

    def check(self) -> bool:
        """Raise CircuitOpen unless this call may go ahead now. True if this call is the trial."""
        if self.redis.exists(self.open_key):
            raise CircuitOpen("Twitter is failing: the circuit breaker is open")
        if not self.redis.exists(self.tripped_key):
            return False  # closed
        if not self.redis.set(self.trial_key, 1, px=ms(self.trial), nx=True):
            raise CircuitOpen("one trial call is testing Twitter: the others wait for it")
        return True

    def record_failure(self, trial: bool) -> None:
        if trial:
            return self._open()  # half-open, and the trial failed: open again at once
        if self.redis.exists(self.tripped_key):
            return  # open already: a call that started before it opened adds nothing
        with self.redis.pipeline() as pipe:  # MULTI/EXEC: both or neither
            pipe.set(self.failures_key, 0, px=ms(self.window), nx=True)  # the first starts the window
            pipe.incr(self.failures_key)  # keeps the key's time to live
            _, failures = pipe.execute()
        if failures >= self.threshold:
            self._open()

    def _open(self) -> None:
        with self.redis.pipeline() as pipe:
            pipe.set(self.open_key, 1, px=ms(self.cooldown))
            pipe.set(self.tripped_key, 1)
            pipe.delete(self.failures_key, self.trial_key)
            pipe.execute()

    def record_success(self, trial: bool) -> None:
        if trial:
            self.redis.delete(self.failures_key, self.tripped_key, self.trial_key)  # the trial worked: closed
        elif not self.redis.exists(self.tripped_key):
            self.redis.delete(self.failures_key)  # closed, and calls work: the count starts afresh
        # Otherwise a call that started before the breaker opened worked late: it says nothing of
        # Twitter now, and only the trial may close the breaker.

    def is_open(self) -> bool:
        """Is every call held back now: open, or a trial call under way?"""
        return self.redis.exists(self.open_key, self.trial_key) > 0

    def seconds_left(self) -> float:
        """How long a call should wait before it asks again: what is left of the cool-down; during
        a trial, what is left of it, but no more than a quarter of a cool-down (a trial usually
        answers in a second or two)."""
        cooling = self.redis.pttl(self.open_key) / 1000
        if cooling > 0:
            return cooling
        return max(0, min(self.redis.pttl(self.trial_key) / 1000, self.cooldown / 4))


def ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
# --8<-- [end:breaker]
