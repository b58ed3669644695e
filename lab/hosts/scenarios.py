"""The lab of hosts' scenarios: a stream of numbered comments, a fault, and one verdict.

Every comment is numbered (`comment 17`). At the end the lab reconciles what the web answered,
what the fake Twitter posted, and what Redis and the database still hold:

- lost: a comment the site accepted (303) whose tweet never came;
- duplicated: a comment tweeted more than once, or whose repeat Twitter refused;
- stranded: a tweet's job left in RQ's started or failed registry, or still queued, or (stage 05)
  an outbox row not posted, once the lab stopped waiting;
- recovery: from the fault to the first tweet posted after it;
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
from rq.registry import FailedJobRegistry, StartedJobRegistry

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
        Scenario("failover", "the Redis primary's host crashes; Sentinel promotes the replica",
                 crash_the_primary, full=Phases(10, 20, 60), quick=Phases(4, 10, 30)),
    ]
}


@dataclass
class Comments:
    """The load: one numbered comment every `interval` seconds, each answer recorded."""

    site: SiteClient
    photo: int
    interval: float = 0.1
    answers: dict[int, str] = field(default_factory=dict)  # number -> "accepted" or what went wrong
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
        try:
            response = self.site.comment(self.photo, f"comment {number}", timeout=CLIENT_TIMEOUT)
            accepted = response.status_code == 303
            self.answers[number] = "accepted" if accepted else f"answered {response.status_code}"
        except requests.RequestException as error:
            self.answers[number] = type(error).__name__

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def posted(site: HostedSite) -> tuple[Counter, list[float]]:
    """How many times each comment was tweeted, and when each tweet arrived (Unix time)."""
    counts, times = Counter(), []
    for tweet in site.twitter.ledger():
        found = COMMENT.match(tweet["text"])
        if found:
            counts[int(found.group(1))] += 1
            times.append(datetime.fromisoformat(tweet["received_at"]).timestamp())
    return counts, times


def stranded(site: HostedSite) -> dict[str, list[int]]:
    """Comments whose tweets wait somewhere they will not leave by themselves, by where."""
    where: dict[str, list[int]] = {}
    try:
        with site.primary() as connection:
            queue = Queue("tweets", connection=connection)
            for name, job_ids in (("queued", queue.get_job_ids()),
                                  ("started", StartedJobRegistry(queue=queue).get_job_ids()),
                                  ("failed", FailedJobRegistry(queue=queue).get_job_ids())):
                where[name] = job_ids
    except redis.RedisError as error:
        where["redis unreachable"] = [str(error)]
    if "relay" in site.stage.processes():
        with psycopg.connect(site.database_url) as db:
            where["outbox"] = [row[0] for row in db.execute("SELECT tweet_id FROM outbox")]
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
    counts, times = posted(site)
    after = [moment for moment in times if moment > fault_at]
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


def verdict_line(result: dict) -> str:
    def ids(numbers: list[int]) -> str:
        return f" ({', '.join(f'comment {n}' for n in numbers[:8])}{', ...' if len(numbers) > 8 else ''})" \
            if numbers else ""

    stranded_text = ", ".join(f"{len(found)} {where}" for where, found in result["stranded"].items()) or "0"
    recovery = "never" if result["recovery"] is None else f"{result['recovery']:g} s"
    exits = sum(result["exits"].values())
    return (
        f"{result['scenario']} on {result['stage']}: lost {len(result['lost'])}{ids(result['lost'])}, "
        f"duplicated {len(result['duplicated'])}{ids(result['duplicated'])}, "
        f"repeats refused {result['repeats_refused']}, stranded {stranded_text}, recovery {recovery}, "
        f"refused {sum(result['refused'].values())} of {result['comments']}, job worker exits {exits}"
    )
