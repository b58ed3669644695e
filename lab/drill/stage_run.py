"""One stage under one scenario: start it, play the scenario under load, drain, settle, count.

`run_stage` is all the drill command (run.py) needs; `StageRun` holds each phase as a method.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import psutil
from rich.console import Console

from lab.bench.figures import percentile
from lab.drill import verdicts
from lab.drill.board import Board, Sample
from lab.drill.load import Load, rates
from lab.drill.probes import backlog_probe
from lab.drill.scenarios import Scenario
from lab.drill.slots import job_worker_pids, slots_probe
from lab.runtime.process import ManagedProcess, free_port
from lab.runtime.stages import Stage
from lab.runtime.timescale import whole_seconds
from lab.runtime.up import restart_exited, stage_environment, start_stage
from lab.testing.site_client import SiteClient
from lab.twitter import FakeTwitter

WEB_WORKERS = 4  # the same fixed pool for every stage, like PHP-FPM's
BACKGROUND_WORKERS = 4  # enough to keep up with the load at Twitter's normal latency
GUNICORN_TIMEOUT = 20  # story seconds: gunicorn kills a web worker stuck this long
AVAILABLE_WITHIN = 1.0  # a page view counts as available if it answered OK within this many seconds
SAMPLE_EVERY = 0.25  # seconds between backlog samples
# Seconds to wait at most for the backlog to drain after the load stops. Not scaled with the story:
# how fast workers drain is set by the machine (a fork per RQ job, a loaded CPU), not by the story.
# It also covers RQ's own recovery of a job whose job worker died with Redis (the queue-restart
# scenario): the job's heartbeat runs out (90 s), a maintenance pass (every 60 s) finds it in the
# intermediate queue, and the next one, a minute later, fails it into its retry. The drill stops
# waiting as soon as the backlog is empty, so the bound costs time only when something is stuck.
DRAIN_BOUND = 300.0
QUIET_FOR = 3.0  # seconds with an empty backlog and no new tweet that count as drained
REQUEST_MARGIN = 1.0  # seconds: a request begun this long before the queue died may still enqueue after
REDIS_FORGETS_REASON = (
    "queued in a Redis that keeps nothing on disk (REDIS_APPENDFSYNC=off; the stage's default keeps them)"
)
QUEUE_RESTART_INVARIANT = "test_no_tweet_is_lost_when_the_queue_restarts"
QUEUE_DOWN_REASON = (
    "made while the queue server was down: the comment is saved, its tweet cannot be queued "
    "(two writes: fixed in 05-outbox)"
)


def kill_a_worker(stage: Stage, processes: dict[str, ManagedProcess]) -> str:
    """SIGKILL one job worker (stage 01 has none: one of its web workers). A stage whose Procfile
    runs one job worker per process (stage 04: `rq worker`) loses that process; where one process
    runs several (`--workers N`), one of its children."""
    own = sorted(name for name in processes if name.startswith("worker."))
    if own:
        processes[own[0]].signal(signal.SIGKILL)
        return f"killed {own[0]} process {processes[own[0]].pid}"
    owner = processes.get("worker") or processes["web"]
    children = psutil.Process(owner.pid).children()
    if not children:
        return "no worker to kill"
    children[0].send_signal(signal.SIGKILL)
    return f"killed {owner.name.split(':')[1]} process {children[0].pid}"


QUEUE_SERVERS = ("kestrel", "redis")
QUEUE_DOWN_SECONDS = 5  # story seconds the killed queue server stays down, while comments keep coming


def kill_the_queue(processes: dict[str, ManagedProcess]) -> str | None:
    """SIGKILL the stage's queue server; its Procfile name, or None for a stage without one."""
    for name in QUEUE_SERVERS:
        if name in processes:
            processes[name].kill()
            processes[name].remove_log()
            return name
    return None


def start_the_queue(stage: Stage, processes: dict[str, ManagedProcess], env: dict, name: str) -> str:
    """Start the queue server `name` again, from its files, as a process manager would."""
    others = frozenset(stage.processes()) - {name}
    [processes[name]] = start_stage(stage, env, skip=others)
    return f"started {name} again"


class StageRun:
    """One stage under one scenario, phase by phase: start, play the scenario under load, drain,
    settle, then count what reached Twitter. `run_stage` calls them in that order."""

    def __init__(self, stage: Stage, scenario: Scenario, scale: float, board: Board, refuse_duplicates: bool):
        self.stage, self.scenario, self.scale, self.board = stage, scenario, scale, board
        self.refuse_duplicates = refuse_duplicates
        self.twitter: FakeTwitter | None = None
        self.data = tempfile.TemporaryDirectory(prefix="workbook-drill-")
        self.processes: dict[str, ManagedProcess] = {}
        self.backlog: list[list[float]] = []  # [load seconds, jobs waiting]
        # [load seconds, web workers' states, job workers' states, tweets Twitter has accepted]
        self.slots: list[list] = []
        self.events: list[list] = []  # [load seconds, what the scenario did]
        self.phases: list[dict] = []
        self.summary_extra: dict = {}
        self.queue_down: list = [None, None]  # load seconds: the queue server killed, and back
        self.queue_killed: tuple[str, float] | None = None  # which, and when it is to start again
        self.all_posted_at: float | None = None
        self.deadline = 0.0

    def start(self) -> None:
        """The fake Twitter, the stage's processes, a photo to comment on, and the load (not yet running)."""
        self.twitter = FakeTwitter.start(
            latency_ms=(1000, 2000), time_scale=self.scale, reject_duplicates=self.refuse_duplicates)
        self.env = stage_environment(
            data_dir=Path(self.data.name) / "data",
            workers=WEB_WORKERS,
            web_port=free_port(),
            twitter_port=self.twitter.port,
            twitter_control_port=self.twitter.control_port,
            kestrel_port=free_port(),
            redis_port=free_port(),
        )
        self.env.update(
            WORKER_COUNT=str(BACKGROUND_WORKERS),
            WORKBOOK_TIME_SCALE=repr(self.scale),
            WEB_TIMEOUT=str(whole_seconds(GUNICORN_TIMEOUT, self.scale)),
        )
        self.board.say(self.stage.name, f"starting {', '.join(self.stage.processes())}")
        for process in start_stage(self.stage, self.env, skip=frozenset({"twitter"})):
            self.processes[process.name.split(":")[1]] = process
        site = SiteClient(f"http://127.0.0.1:{self.env['WEB_PORT']}")
        self.probe = backlog_probe(set(self.processes), self.env, self.twitter)
        self.slots_probe = slots_probe(self.processes["web"].pid, job_worker_pids(self.processes), self.env)
        label = f"{self.stage.name} {os.getpid()} {time.time():.0f}"
        self.load = Load(site, site.new_photo(), label=label, rates=rates(self.scale))

    def sample(self, phase: str) -> None:
        # A process manager starts again a job worker that exited (RQ's quit when Redis goes away).
        for restarted in restart_exited(self.stage, self.env, self.processes):
            self.events.append([round(self.load.now(), 3), restarted])
        load = self.load
        now = round(load.now(), 3)
        tweets = self.twitter.stats()["accepted"]
        try:
            self.backlog.append([now, self.probe()])
            self.slots.append([now, *self.slots_probe(), tweets])
        except Exception:  # a queue server being restarted does not answer: no sample
            pass
        requests = load.snapshot()
        views = [r for r in requests if r.kind == "view"]
        answered, waiting = load.newly_answered()
        self.board.sample(self.stage.name, Sample(
            phase=phase,
            seconds=now,
            answered=sum(r.outcome == "ok" for r in views) / len(views) if views else None,
            backlog=self.backlog[-1][1] if self.backlog else None,
            web=self.slots[-1][1] if self.slots else "",
            jobs=self.slots[-1][2] if self.slots else "",
            tweets=tweets,
            requests=[r.as_json() for r in answered],
            waiting=[[r.kind, round(r.start, 4)] for r in waiting],
        ))

    def play(self) -> None:
        """Every phase of the scenario under load, sampling as it goes; then Twitter back up."""
        load = self.load
        load.start()
        for phase in self.scenario.phases:
            started = load.now()
            self.twitter.control(**phase.twitter)
            action = phase.action
            while load.now() < started + phase.seconds * self.scale:
                if action and load.now() >= started + phase.action_at * self.scale:
                    self.act(action)
                    action = None
                self.start_the_queue_when_due()
                self.sample(phase.name)
                time.sleep(SAMPLE_EVERY)
            self.phases.append({"name": phase.name, "start": round(started, 3), "end": round(load.now(), 3)})
        if self.queue_killed is not None:  # the story ended first: the server starts now
            self.queue_killed = (self.queue_killed[0], 0.0)
            self.start_the_queue_when_due()
        self.twitter.control(mode="up")
        self.board.say(self.stage.name, "waiting for the last requests")
        load.stop()

    def act(self, action: str) -> None:
        now = self.load.now
        if action == "kill-worker":
            self.events.append([round(now(), 3), kill_a_worker(self.stage, self.processes)])
        elif action == "restart-queue":
            backlog_before = self.backlog[-1][1] if self.backlog else None
            self.queue_down = [now() - REQUEST_MARGIN, None]
            killed = kill_the_queue(self.processes)
            if killed is None:
                self.events.append([round(now(), 3), "no queue server to restart"])
                return
            self.events.append([round(now(), 3), f"killed {killed}"])
            self.summary_extra["backlog_at_restart"] = backlog_before
            self.queue_killed = (killed, now() + QUEUE_DOWN_SECONDS * self.scale)

    def start_the_queue_when_due(self) -> None:
        """The killed queue server, started again once it has been down QUEUE_DOWN_SECONDS."""
        if self.queue_killed is not None and self.load.now() >= self.queue_killed[1]:
            name, _ = self.queue_killed
            started = start_the_queue(self.stage, self.processes, self.env, name)
            self.events.append([round(self.load.now(), 3), started])
            self.queue_down[1] = self.load.now()
            self.queue_killed = None

    def drain(self) -> None:
        """Until every tweet asked for is posted, or the backlog stays empty and no new tweet
        arrives for a while, or the bound runs out."""
        asked = self.asked()
        self.deadline = time.monotonic() + DRAIN_BOUND
        last_change, last_count = time.monotonic(), -1
        while time.monotonic() < self.deadline:
            self.sample("drain")
            count = self.twitter.stats()["accepted"]
            if count != last_count:
                last_change, last_count = time.monotonic(), count
            if all(self.twitter.tweets_starting_with(asked).values()):
                self.all_posted_at = self.load.now()
                return
            if self.backlog and self.backlog[-1][1] == 0 and time.monotonic() - last_change > QUIET_FOR:
                return
            time.sleep(SAMPLE_EVERY)

    def settle(self) -> None:
        """Before counting: a second delivery can land a moment after the first. Settled: nothing
        in flight at Twitter, and the backlog empty or no call received for a while (stage 02
        retries repeats that Twitter refused, with growing delays)."""
        received, quiet_since = self.twitter.stats()["received"], time.monotonic()
        while time.monotonic() < self.deadline:
            stats = self.twitter.stats()
            if stats["received"] != received:
                received, quiet_since = stats["received"], time.monotonic()
            quiet = time.monotonic() - quiet_since >= QUIET_FOR
            if stats["in_flight"] == 0 and ((self.backlog and self.backlog[-1][1] == 0) or quiet):
                return
            self.sample("drain")
            time.sleep(SAMPLE_EVERY)

    def asked(self) -> list[str]:
        return [r.tweet for r in self.load.snapshot() if r.tweet]

    def outcome(self) -> dict:
        """The summary, the samples and the verdict on the stage's promises."""
        posted = self.twitter.tweets_starting_with(self.asked())
        outcome = summarize(
            self.stage, self.load, posted, self.phases, self.backlog, self.events, self.all_posted_at)
        summary = outcome["summary"]
        summary["repeats_refused"] = self.twitter.stats()["rejected"].get("duplicate", 0)
        summary["duplicate_posts"] = summary["tweets_duplicated"] + summary["repeats_refused"]
        summary.update(self.summary_extra)
        outcome["verdict"] = verdicts.verdict(self.stage, summary, posted, self.excused_losses())
        outcome["slots"] = self.slots
        outcome["phases"] = self.phases  # as measured: the summary's phases, for the viewer to count the same
        outcome["drained_at"] = self.all_posted_at  # load seconds when the last tweet was on Twitter
        return outcome

    def excused_losses(self) -> dict[str, str]:
        """Tweets the scenario itself explains losing, in a stage known to lose them (its
        queue-restart invariant is a strict xfail). A comment made while the queue server was down
        is saved, but its tweet cannot be queued: the two writes that stage 05's outbox ends. And a
        Redis that keeps nothing on disk (REDIS_APPENDFSYNC=off) loses every job queued in it."""
        if QUEUE_RESTART_INVARIANT not in verdicts.known_broken(self.stage):
            return {}  # a stage that keeps the promise is excused nothing
        forgets = "redis" in self.processes and self.env.get("REDIS_APPENDFSYNC") == "off"
        down_from, back_at = self.queue_down
        return {
            r.tweet: (REDIS_FORGETS_REASON if forgets and r.start < down_from else QUEUE_DOWN_REASON)
            for r in self.load.snapshot()
            if r.tweet and back_at is not None and (forgets or down_from <= r.start) and r.start <= back_at
        }

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()
            process.remove_log()
        if self.twitter is not None:
            self.twitter.stop()
        self.data.cleanup()


def run_stage(
    stage: Stage, scenario: Scenario, scale: float, board: Board, console: Console, refuse_duplicates: bool = True
) -> dict:
    run = StageRun(stage, scenario, scale, board, refuse_duplicates)
    try:
        run.start()
        run.play()
        run.drain()
        run.settle()
        outcome = run.outcome()
        board.stage_done(stage.name, outcome)
        return outcome
    finally:
        run.stop()


def summarize(stage, load, posted: dict[str, list], phases, backlog, events, all_posted_at=None) -> dict:
    requests = load.snapshot()
    outage = next(p for p in phases if p["name"] == "outage")
    summary: dict = {}

    def in_phase(request, phase) -> bool:
        return phase["start"] <= request.start < phase["end"]

    for phase in phases:
        answered = [r.latency * 1000 for r in requests
                    if r.kind == "comment" and r.outcome == "ok" and in_phase(r, phase)]
        summary[f"comment_p50_ms_{phase['name']}"] = _round(percentile(answered, 0.5))
        summary[f"comment_p99_ms_{phase['name']}"] = _round(percentile(answered, 0.99))
    normal = phases[0]
    uploads = [r.latency * 1000 for r in requests
               if r.kind == "upload" and r.outcome == "ok" and in_phase(r, normal)]
    summary["upload_p50_ms_normal"] = _round(percentile(uploads, 0.5))
    views = [r for r in requests if r.kind == "view" and in_phase(r, outage)]
    available = [r for r in views if r.outcome == "ok" and r.latency <= AVAILABLE_WITHIN]
    summary["availability_during_outage"] = round(len(available) / len(views), 4) if views else None
    summary["errors"] = sum(r.outcome != "ok" for r in requests)
    summary["tweets_expected"] = len(posted)
    summary["tweets_posted"] = sum(1 for tweets in posted.values() if tweets)
    summary["tweets_lost"] = sum(1 for tweets in posted.values() if not tweets)
    summary["tweets_duplicated"] = sum(len(tweets) - 1 for tweets in posted.values() if len(tweets) > 1)
    summary["peak_backlog"] = max((n for _, n in backlog), default=0)
    # Drained: every tweet asked for is on Twitter; for a stage that lost some, its backlog is empty.
    if all_posted_at is not None:
        summary["drain_seconds"] = round(max(0.0, all_posted_at - outage["end"]), 2)
    else:
        summary["drain_seconds"] = _drain_seconds(backlog, outage["end"])
    return {
        "summary": summary,
        "requests": [r.as_json() for r in requests],
        "backlog": backlog,
        "events": events,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _drain_seconds(backlog: list[list[float]], outage_end: float) -> float | None:
    """From the end of the outage to the moment the backlog emptied for good."""
    emptied = None
    for moment, count in backlog:
        if moment < outage_end:
            continue
        if count == 0 and emptied is None:
            emptied = moment
        elif count != 0:
            emptied = None
    return None if emptied is None else round(max(0.0, emptied - outage_end), 2)
