"""A circuit breaker whose state lives in Redis, shared by every worker process.

RQ runs each job in a freshly forked process, so a breaker kept in memory would start closed,
with no failures counted, for every single job: it would never trip. Counting in Redis makes the
failures of all workers add up.

closed: calls go through; each failure is counted, and `threshold` failures within `window`
        seconds open the breaker.
open:   for `cooldown` seconds no call is made at all: the workers take no job, and a job that
        meets the open breaker goes back to wait without spending one of its retries.
after:  the counts start afresh, so the next calls test Twitter again (half-open, loosely).
"""

from __future__ import annotations

import redis


class CircuitOpen(Exception):
    pass


# --8<-- [start:breaker]
class CircuitBreaker:
    def __init__(self, connection: redis.Redis, name: str, threshold: int, window: float, cooldown: float):
        self.redis = connection
        self.failures_key = f"breaker:{name}:failures"
        self.open_key = f"breaker:{name}:open"
        self.threshold, self.window, self.cooldown = threshold, window, cooldown

    def check(self) -> None:
        """Raise CircuitOpen while the breaker is open: do not even try."""
        if self.redis.exists(self.open_key):
            raise CircuitOpen("Twitter is failing: the circuit breaker is open")

    def record_failure(self) -> None:
        with self.redis.pipeline() as pipe:  # MULTI/EXEC: both or neither
            pipe.set(self.failures_key, 0, px=max(1, int(self.window * 1000)), nx=True)  # the first starts the window
            pipe.incr(self.failures_key)  # keeps the key's time to live
            _, failures = pipe.execute()
        if failures >= self.threshold:
            with self.redis.pipeline() as pipe:
                pipe.set(self.open_key, failures, px=max(1, int(self.cooldown * 1000)))
                pipe.delete(self.failures_key)
                pipe.execute()

    def record_success(self) -> None:
        self.redis.delete(self.failures_key)

    def is_open(self) -> bool:
        return bool(self.redis.exists(self.open_key))

    def seconds_left(self) -> float:
        """How long the breaker stays open (0 when closed)."""
        return max(0, self.redis.pttl(self.open_key)) / 1000
# --8<-- [end:breaker]
