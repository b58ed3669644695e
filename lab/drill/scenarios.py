"""What the fake Twitter does during a drill, phase by phase.

Durations are story seconds: the drill's time scale shrinks them, with every other delay of the
story (Twitter's latency, the stages' timeouts and retries), so `--quick` is the same story, faster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NORMAL = {"mode": "up"}


@dataclass(frozen=True)
class Phase:
    name: str  # normal, outage or recovery
    seconds: float  # story seconds
    twitter: dict = field(default_factory=lambda: dict(NORMAL))
    action: str | None = None  # done to the stage's processes during the phase...
    action_at: float = 0.0  # ...this many story seconds after the phase starts


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    phases: tuple[Phase, ...]


def _outage(
    twitter: dict | None = None, action: str | None = None, action_at: float = 0.0, seconds: float = 30
) -> tuple[Phase, ...]:
    return (
        Phase("normal", 20),
        Phase("outage", seconds, twitter or dict(NORMAL), action, action_at),
        Phase("recovery", 20),
    )


SCENARIOS = {
    scenario.name: scenario
    for scenario in (
        Scenario("hang", "Twitter answers in 1-2 s, then hangs (accepts, never answers) for 30 s, then recovers",
                 _outage({"mode": "hang"})),
        Scenario("down", "Twitter answers in 1-2 s, then answers 503 for 30 s, then recovers",
                 _outage({"mode": "down"})),
        Scenario("flaky", "Twitter answers in 1-2 s, then fails 30 % of requests for 30 s, then recovers",
                 _outage({"mode": "flaky", "fail_rate": 0.3})),
        Scenario("slow", "Twitter answers in 1-2 s, then takes ten times as long for 30 s, then recovers",
                 _outage({"mode": "slow"})),
        Scenario("worker-killed", "Twitter stays up; a worker is killed with SIGKILL in the middle of the run",
                 _outage(action="kill-worker")),
        # Twitter is down first, so the queue holds a backlog when its server dies: what a journal is for.
        Scenario("queue-restart", "Twitter answers 503 for 30 s; halfway through, with a backlog queued, "
                 "the queue server is killed with SIGKILL, stays down for 5 s while comments keep coming, "
                 "and is started again",
                 _outage({"mode": "down"}, "restart-queue", 15)),
    )
}
