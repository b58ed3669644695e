"""The lab of hosts' scenarios: a stream of numbered comments, a fault, and one verdict.

Every comment is numbered (`comment 17`). At the end the lab reconciles what the web answered,
what the fake Twitter posted, and what Redis and the database still hold (reconcile.py), and
says what broke (verdicts.py). Of the comments the site accepted (303):

- lost: no tweet, and its job is nowhere: nothing will ever post it; "logged" if the web request
  knew (Redis refused the job, or did not answer), silently if a Redis server took it, then lost it;
- duplicated: tweeted more than once (a repeat Twitter refused is counted apart);
- held: no tweet yet, but its job waits where RQ or the relay will pick it up by itself: queued,
  in RQ's intermediate queue (taken by a job worker that died), started (RQ calls it abandoned a
  minute and a half after its worker's last heartbeat, and runs it again), scheduled for its next try, or in
  stage 05's outbox;
- stranded: no tweet, and its job is in RQ's failed registry, where only a person can requeue it;
- recovery: from the fault to the first tweet of a comment made after it;
- refused: comments the site did not accept (an error, or no answer in time).

A run ends once tweets stop coming and nothing is left to run soon (no job queued or scheduled):
what is left is held, stranded or lost. A full run waits long enough for RQ to run the jobs it
held again; a quick one does not, and says which it held.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
import requests
from rq import Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from lab.hosts.reconcile import (
    Watch,
    comment_number,
    logged_lost,
    posted,
    reconcile,
    settled,
    tweets_by_host,
    waiting,
)
from lab.hosts.site import REDIS_HOSTS, TWITTER_PORT, HostedSite
from lab.runtime.process import wait_until
from lab.runtime.redis_server import MAXMEMORY
from lab.testing.site_client import SiteClient

CLIENT_TIMEOUT = 5.0


@dataclass
class Phases:
    before: float  # seconds of load before the fault
    after: float  # seconds of load after the fault ends
    drain: float  # at most this long for the backlog to settle afterwards
    fault: float = 10.0  # how long the fault lasts, where the scenario chooses (a partition, a full Redis)


@dataclass
class Scenario:
    name: str
    description: str  # "{seconds}": how long the fault lasts
    # Makes the fault, lasts as long as it does (the seconds given, where it chooses), and heals it.
    # Returns the comment whose job it caught in a job worker's hands, if it aimed at one.
    fault: Callable[[HostedSite, float], int | None]
    full: Phases
    quick: Phases
    comments_per_second: float = 10.0
    twitter_latency_ms: str = "20-40"
    prepare: Callable[[HostedSite], None] | None = None  # sets the fault's stage, before it starts
    settings: dict[str, str] = field(default_factory=dict)  # the stage's, where the scenario needs its own

    def phases(self, quick: bool) -> Phases:
        return self.quick if quick else self.full

    def describe(self, quick: bool = False) -> str:
        return self.description.format(seconds=f"{self.phases(quick).fault:g}")


# -- faults -----------------------------------------------------------------------------------------

def crash_the_primary(site: HostedSite, seconds: float) -> None:
    site.net.crash("r1")


def partition_web_with_the_primary(site: HostedSite, seconds: float) -> None:
    """{web, r1} cut off from {w1, w2, r2, r3} for `seconds`: the web host's Sentinel still
    sees the old primary; the two on the job workers' hosts agree that it is down, and promote a
    replica, r2 or r3."""
    site.net.partition(["web", "r1"], [host.name for host in site.worker_hosts] + ["r2", "r3"])
    time.sleep(seconds)
    site.net.heal()


def restart_the_primary(site: HostedSite, seconds: float) -> None:
    """kill -9 the primary, and start it again at once on its own files: too fast for Sentinel."""
    site.redis.restart_server(site.net["r1"])


MEMORY_HEADROOM = 64 * 1024  # bytes: room for about 50 jobs (each takes some 1.3 KB here)


def stop_the_job_workers(site: HostedSite) -> None:
    site.stop_job_workers()  # their hosts are down


def fill_the_primary(site: HostedSite, seconds: float) -> None:
    """While no job worker runs, the primary has room for only MEMORY_HEADROOM bytes more than it
    holds (its maxmemory, set for the fault), for `seconds`: the jobs of the comments made meanwhile
    fill it. Then the room and the job workers come back."""
    with site.primary() as server:
        memory = server.info("memory")
        # What maxmemory counts: not the buffers for the replicas and the append-only file.
        held = memory["used_memory"] - memory["mem_not_counted_for_evict"]
        server.config_set("maxmemory", held + MEMORY_HEADROOM)
    time.sleep(seconds)
    with site.primary() as server:
        server.config_set("maxmemory", MAXMEMORY)
    site.start_job_workers(site.worker_hosts)


def busy_job_worker(site: HostedSite, host: str) -> str | None:
    """The id of the job a job worker on `host` runs right now, if one does."""
    pids = set(site.net[host].pids())
    try:
        with site.primary() as connection:
            for worker in Worker.all(connection=connection):
                if worker.pid in pids and worker.get_current_job_id():
                    return worker.get_current_job_id()
    except redis.RedisError:
        pass
    return None


def frozen_mid_call(site: HostedSite) -> Job:
    """Freeze every process on w1 (SIGSTOP) while its job waits on Twitter's answer; that job,
    with w1 still frozen. Twitter has the tweet; the job does not know it yet."""
    host, twitter = site.net["w1"], site.net["tw"]
    port = twitter.port(TWITTER_PORT)
    found: list[str | None] = []

    def frozen() -> bool:
        # Freeze w1 the moment a process on it calls Twitter, then look again: the call is still
        # open only if its answer has not been read (the job closes it once it has), so the job
        # has not marked the tweet posted. A call that ended meanwhile, or a connection with no
        # job behind it, lets w1 go, to wait for the next call.
        if not host.calling(twitter.address, port):
            return False
        site.net.pause("w1")
        found.append(busy_job_worker(site, "w1") if host.calling(twitter.address, port) else None)
        if found[-1] is None:
            site.net.resume("w1")
        return found[-1] is not None

    wait_until(frozen, timeout=30, interval=0.005, what="w1 frozen while its job waits on Twitter")
    with site.primary() as connection:
        return Job.fetch(found[-1], connection=connection, serializer=JSONSerializer)


def cut_a_job_worker_off(site: HostedSite, seconds: float) -> int:
    """w1 cut off from every Redis server while its job waits on Twitter's answer, for `seconds`.
    The job then marks the tweet posted in the database, and cannot tell Redis that it is done."""
    job = frozen_mid_call(site)
    site.net.partition(["w1"], list(REDIS_HOSTS))
    site.net.resume("w1")
    time.sleep(seconds)
    site.net.heal()
    return comment_number(job.args[2])


# The stages' own settings for the waits of one run of the job, shorter than their defaults, so that
# its time limit (which they derive from these waits) is 19 s, not 36: a short freeze outlasts it.
# The lab's hosts answer within milliseconds, and its Twitter within 200 ms.
SHORT_WAITS = {"TWITPIC_DATABASE_TIMEOUT": "2", "TWITPIC_REDIS_TIMEOUT": "0.5",
               "TWITPIC_TWITTER_CONNECT_TIMEOUT": "1", "TWITPIC_TWITTER_READ_TIMEOUT": "3"}


def pause_a_job_worker(site: HostedSite, seconds: float) -> int:
    """w1 frozen while its job waits on Twitter's answer, until the job's time limit has passed and
    five seconds more; then let go (SIGCONT), as after a long GC pause or a frozen VM."""
    job = frozen_mid_call(site)
    time.sleep(job.timeout + 5)
    site.net.resume("w1")
    return comment_number(job.args[2])


SCENARIOS = {
    scenario.name: scenario for scenario in [
        # A full run waits long enough for RQ to call a job whose worker died abandoned (its
        # heartbeat, a minute and a half, then a maintenance pass) and run it again; a quick one
        # does not.
        Scenario("failover", "every process on the Redis primary's host is killed; Sentinel promotes a replica",
                 crash_the_primary, full=Phases(10, 20, 240), quick=Phases(3, 8, 30)),
        Scenario("partition", "the web host and the Redis primary are cut off from the job workers' hosts and "
                              "the replicas for {seconds} s; the majority promotes a replica",
                 partition_web_with_the_primary, full=Phases(10, 20, 240), quick=Phases(3, 8, 30)),
        # A short start, in a full run too: few finished jobs are kept when the backlog begins. A
        # full run fills Redis long enough for a backlog (some 200 jobs) larger than the room and
        # the finished jobs RQ keeps for a while, which a Redis that evicts keys would delete first:
        # as in a long outage. A quick one, long enough to fill the room.
        Scenario("memory-full", "no job worker runs for {seconds} s while the Redis primary has "
                                f"room for only {MEMORY_HEADROOM // 1024} KB more: the queued jobs fill it",
                 fill_the_primary, full=Phases(3, 20, 240, fault=20), quick=Phases(3, 8, 30, fault=10),
                 prepare=stop_the_job_workers),
        # Twitter takes 1-2 s, as in the case study: two job workers fall behind, and a backlog
        # waits in the queue when the primary restarts.
        Scenario("restart", "the Redis primary is killed and started again at once, on its own files, "
                            "while a backlog waits in the queue",
                 restart_the_primary, full=Phases(10, 20, 240), quick=Phases(4, 3, 60),
                 comments_per_second=5, twitter_latency_ms="1000-2000"),
        Scenario("worker-cut", "a job worker host is cut off from every Redis server for {seconds} s, while its "
                               "job waits on Twitter's answer",
                 cut_a_job_worker_off, full=Phases(10, 20, 240), quick=Phases(3, 8, 30),
                 comments_per_second=4, twitter_latency_ms="100-200"),
        Scenario("worker-pause", "a job worker host freezes while its job waits on Twitter's answer, "
                                 "past the job's time limit",
                 pause_a_job_worker, full=Phases(10, 20, 240), quick=Phases(3, 8, 30),
                 comments_per_second=4, twitter_latency_ms="100-200", settings=SHORT_WAITS),
    ]
}


# -- the load ---------------------------------------------------------------------------------------

@dataclass
class Comments:
    """The load: one numbered comment every `interval` seconds, each answer recorded."""

    site: SiteClient
    photo: int
    interval: float = 0.1
    answers: dict[int, str] = field(default_factory=dict)  # number -> "accepted" or what went wrong
    sent_at: dict[int, float] = field(default_factory=dict)  # number -> when it was sent (Unix time)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        number = 0
        senders = []
        while not self._stop.is_set():
            number += 1
            sender = threading.Thread(target=self._send, args=(number,), daemon=True)
            sender.start()
            senders.append(sender)
            self._stop.wait(self.interval)
        for sender in senders:
            sender.join(CLIENT_TIMEOUT + 5)

    def _send(self, number: int) -> None:
        self.sent_at[number] = time.time()
        try:
            response = self.site.comment(self.photo, f"comment {number}", timeout=CLIENT_TIMEOUT)
            accepted = response.status_code == 303
            self.answers[number] = "accepted" if accepted else f"answered {response.status_code}"
        except requests.RequestException as error:
            self.answers[number] = type(error).__name__

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run(site: HostedSite, scenario: Scenario, quick: bool, say: Callable[[str], None] = print) -> dict:
    phases = scenario.phases(quick)
    client = SiteClient(site.base_url)
    photo = client.new_photo()
    load = Comments(client, photo, interval=1 / scenario.comments_per_second)
    started = time.time()
    load.start()
    watch = Watch(site, started).start()
    time.sleep(phases.before)
    say(f"{site.stage.name}: {scenario.describe(quick)}")
    if scenario.prepare:
        scenario.prepare(site)
    fault_at = time.time()
    in_hand = scenario.fault(site, phases.fault)
    healed_at = time.time()
    time.sleep(phases.after)
    load.stop()
    accepted = {number for number, answer in load.answers.items() if answer == "accepted"}
    # The servers agree again first: after a partition, the old primary stays one until the
    # Sentinels make it a replica, some ten seconds after the cut heals, and drops its jobs then.
    for condition, what in ((site.redis.one_primary, "one primary"),
                            (settled(site, accepted, quick), "the run settles")):
        try:
            wait_until(condition, timeout=phases.drain, interval=0.5, what=what)
        except TimeoutError:
            pass  # the verdict says what is left
    samples = watch.stop()
    counts, first = posted(site)
    lost, held, stranded = reconcile(accepted, counts, waiting(site))
    after = [arrived for number, arrived in first.items() if load.sent_at.get(number, 0) > fault_at]
    refused = Counter(answer for answer in load.answers.values() if answer != "accepted")
    return {
        "stage": site.stage.name,
        "scenario": scenario.name,
        "quick": quick,
        "comments": len(load.answers),
        "accepted": len(accepted),
        "lost": lost,
        "lost_logged": sorted(set(lost) & logged_lost(site)),  # those the web request knew it lost
        "duplicated": sorted(number for number, count in counts.items() if count > 1),
        "repeats_refused": site.twitter.stats()["rejected"].get("duplicate", 0),
        "held": held,
        "stranded": stranded,
        "recovery": round(min(after) - fault_at, 2) if after else None,
        "refused": dict(refused),
        "exits": dict(site.exits),
        "tweets_by_host": tweets_by_host(site, healed_at),  # after the fault ended, per job worker host
        "fault": [round(fault_at - started, 2), round(healed_at - started, 2)],
        # the comment whose job the fault caught in a job worker's hands, and how often it was tweeted
        "in_hand": None if in_hand is None else [in_hand, counts[in_hand]],
        # For each comment: when it was sent (seconds from the start of the load), whether the site
        # accepted it, and how long its first tweet took to come, if it came.
        "timeline": [[number, round(load.sent_at[number] - started, 2), load.answers.get(number) == "accepted",
                      round(first[number] - load.sent_at[number], 2) if number in first else None]
                     for number in sorted(load.sent_at)],
        # Twice a second: seconds from the start, the primary as the Sentinels on web, w1 and w2
        # name it, then r1's, r2's and r3's [role, queue length] (None: no answer).
        "watch": samples,
    }
