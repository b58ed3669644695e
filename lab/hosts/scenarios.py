"""The lab of hosts' scenarios: a stream of numbered comments, a fault, and one verdict.

Every comment is numbered (`comment 17`). At the end the lab reconciles what the web answered,
what the fake Twitter posted, and what Redis and the database still hold:

- lost: a comment the site accepted (303) whose tweet never came;
- duplicated: a comment tweeted more than once (a repeat Twitter refused is counted apart);
- stranded: a tweet's job still queued, or left in RQ's intermediate queue, started, scheduled
  or failed registry, or (stage 05) an outbox row not posted, once the lab stopped waiting;
- recovery: from the fault to the first tweet of a comment made after it;
- refused: comments the site did not accept (an error, or no answer in time).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
import redis
import requests
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from lab.hosts.site import HostedSite
from lab.runtime.process import wait_until
from lab.testing.site_client import SiteClient

COMMENT = re.compile(r"^comment (\d+) ")
CLIENT_TIMEOUT = 5.0


@dataclass
class Phases:
    before: float  # seconds of load before the fault
    during: float  # seconds of load after it
    drain: float  # at most this long for the backlog to settle afterwards


@dataclass
class Scenario:
    name: str
    description: str
    fault: Callable[[HostedSite], None]
    full: Phases
    quick: Phases


def crash_the_primary(site: HostedSite) -> None:
    site.net.crash("r1")


SCENARIOS = {
    scenario.name: scenario for scenario in [
        Scenario("failover", "every process on the Redis primary's host is killed; Sentinel promotes the replica",
                 # A full run waits long enough for RQ to call a job whose worker died abandoned
                 # (its heartbeat, 90 s, then a maintenance pass) and run it again; a quick one not.
                 crash_the_primary, full=Phases(10, 20, 240), quick=Phases(4, 10, 30)),
    ]
}


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


def posted(site: HostedSite) -> tuple[Counter, dict[int, float]]:
    """How many times each comment was tweeted, and when its first tweet arrived (Unix time)."""
    counts, first = Counter(), {}
    for tweet in site.twitter.ledger():
        found = COMMENT.match(tweet["text"])
        if found:
            number = int(found.group(1))
            counts[number] += 1
            arrived = datetime.fromisoformat(tweet["received_at"]).timestamp()
            first[number] = min(first.get(number, arrived), arrived)
    return counts, first


def comment_number(text: str) -> int | str:
    found = COMMENT.match(text or "")
    return int(found.group(1)) if found else text


def stranded(site: HostedSite) -> dict[str, list[int | str]]:
    """The comments whose tweets wait where they will not leave by themselves, by where they wait:
    RQ's queue, its intermediate queue, its started, scheduled or failed registry, stage 05's outbox."""
    where: dict[str, list[int | str]] = {}
    try:
        with site.primary() as connection:
            queue = Queue("tweets", connection=connection, serializer=JSONSerializer)
            for name, job_ids in (("queued", queue.get_job_ids()),
                                  # taken off the queue by a job worker that died before it started it
                                  ("intermediate", queue.intermediate_queue.get_job_ids()),
                                  ("started", StartedJobRegistry(queue=queue).get_job_ids()),
                                  # a crashed run, waiting for its next try (the job's Retry)
                                  ("scheduled", ScheduledJobRegistry(queue=queue).get_job_ids()),
                                  ("failed", FailedJobRegistry(queue=queue).get_job_ids())):
                jobs = Job.fetch_many(job_ids, connection=connection, serializer=JSONSerializer)
                # A job's arguments are the tweet's id, its user and its text.
                found = [comment_number(job.args[2]) if job else job_id
                         for job, job_id in zip(jobs, job_ids, strict=True)]
                where[name] = sorted(found, key=str)
    except redis.RedisError as error:
        where["redis unreachable"] = [str(error)]
    if "relay" in site.stage.processes():
        with psycopg.connect(site.database_url) as db:
            where["outbox"] = sorted((comment_number(row[0]) for row in db.execute("SELECT text FROM outbox")),
                                     key=str)
    return {name: found for name, found in where.items() if found}


def run(site: HostedSite, scenario: Scenario, quick: bool, say: Callable[[str], None] = print) -> dict:
    phases = scenario.quick if quick else scenario.full
    client = SiteClient(site.base_url)
    photo = client.new_photo()
    load = Comments(client, photo)
    load.start()
    time.sleep(phases.before)
    fault_at = time.time()
    say(f"{site.stage.name}: {scenario.description}")
    scenario.fault(site)
    time.sleep(phases.during)
    load.stop()
    accepted = {number for number, answer in load.answers.items() if answer == "accepted"}

    def settled() -> bool:
        counts, _ = posted(site)
        return accepted <= set(counts)

    try:
        wait_until(settled, timeout=phases.drain, interval=0.5, what="every accepted comment tweeted")
    except TimeoutError:
        pass
    counts, first = posted(site)
    after = [arrived for number, arrived in first.items() if load.sent_at.get(number, 0) > fault_at]
    refused = Counter(answer for answer in load.answers.values() if answer != "accepted")
    return {
        "stage": site.stage.name,
        "scenario": scenario.name,
        "comments": len(load.answers),
        "accepted": len(accepted),
        "lost": sorted(accepted - set(counts)),
        "duplicated": sorted(number for number, count in counts.items() if count > 1),
        "repeats_refused": site.twitter.stats()["rejected"].get("duplicate", 0),
        "stranded": stranded(site),
        "recovery": round(min(after) - fault_at, 2) if after else None,
        "refused": dict(refused),
        "exits": dict(site.exits),
    }


def verdict_lines(result: dict) -> list[str]:
    """The verdict: two lines of counts, then the ids of the comments lost or duplicated."""
    stranded_text = ", ".join(f"{len(found)} {where}" for where, found in result["stranded"].items()) or "0"
    recovery = "never" if result["recovery"] is None else f"{result['recovery']:g} s"
    by_line = Counter()
    for key, count in result["exits"].items():
        by_line[key.split(":")[1]] += count  # host:line
    exits = ", ".join(f"{line} {count}" for line, count in sorted(by_line.items())) or "none"
    lines = [
        f"{result['scenario']} on {result['stage']}: lost {len(result['lost'])}, "
        f"duplicated {len(result['duplicated'])}, stranded {stranded_text}",
        f"  recovery {recovery}, refused {sum(result['refused'].values())} of {result['comments']}, "
        f"repeats refused {result['repeats_refused']}, exited and restarted: {exits}",
    ]
    for where, found in result["stranded"].items():
        lines.append(f"  stranded in {where}: {', '.join(f'comment {n}' for n in found[:8])}"
                     f"{', ...' if len(found) > 8 else ''}")
    for name in ("lost", "duplicated"):
        if result[name]:
            shown = ", ".join(f"comment {number}" for number in result[name][:8])
            lines.append(f"  {name}: {shown}{', ...' if len(result[name]) > 8 else ''}")
    return lines
