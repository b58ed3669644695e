"""What happened in a run of the lab of hosts: the fake Twitter's ledger, where Redis and the
outbox still hold each comment's job, and what Sentinels and servers said twice a second.

Of the comments the site accepted (303), with no tweet:

- lost: their job is nowhere, so nothing will ever post it;
- held: their job waits where RQ or the relay takes it by itself: queued, in RQ's intermediate
  queue (taken by a job worker that died), started (RQ calls it abandoned a minute and a half
  after its worker's last heartbeat, and runs it again), scheduled for its next try, or in stage
  05's outbox;
- stranded: their job is in RQ's failed registry, where only a person can requeue it.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from lab.hosts.redis_ha import MASTER_NAME, REDIS_PORT
from lab.hosts.site import REDIS_HOSTS, HostedSite

COMMENT = re.compile(r"^comment (\d+) ")
# Stage 04's web request, when Redis does not take a tweet's job (queue.py's queue_tweet).
LOGGED_LOST = re.compile(r"tweet comment-(\d+) lost")
CLIENT_TIMEOUT = 5.0
QUIET = 3.0  # no new tweet for this long, and nothing queued: the run has settled
# Where a job waits, and whether RQ (or stage 05's relay) will take it from there by itself.
HELD = ("queued", "intermediate", "started", "scheduled", "outbox")
STRANDED = ("failed",)


@dataclass
class Watch:
    """What each Sentinel and each Redis server says, twice a second, from the lab's own address:
    which server each Sentinel names the primary, and each server's role and queue length."""

    site: HostedSite
    started: float
    samples: list[list] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Watch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.samples.append(self.sample())

    def sample(self) -> list:
        """Seconds from the start, the primary as each Sentinel names it, each server's [role, queued]."""
        servers = {name: self.site.net[name] for name in REDIS_HOSTS}
        names = {(host.address, host.port(REDIS_PORT)): name for name, host in servers.items()}
        # One try each: redis-py's default retries would spend seconds on a server that is gone.
        once = {"socket_timeout": 0.3, "socket_connect_timeout": 0.3, "retry": Retry(NoBackoff(), 0)}
        sample = [round(time.time() - self.started, 1)]
        for address in self.site.redis.sentinel_addresses:
            try:
                with redis.Redis(*address, decode_responses=True, **once) as sentinel:
                    found = sentinel.sentinel_get_master_addr_by_name(MASTER_NAME)
                sample.append(names.get((found[0], int(found[1])), found[0]) if found else None)
            except redis.RedisError:
                sample.append(None)
        for host in servers.values():
            try:
                with redis.Redis(host.address, host.port(REDIS_PORT), **once) as server:
                    role = server.execute_command("ROLE")[0].decode()
                    sample.append([role, Queue("tweets", connection=server).count])
            except redis.RedisError:
                sample.append(None)
        return sample

    def stop(self) -> list[list]:
        """Stop watching; the samples, the last taken now: a run's waits may have seen a change that
        the sample before them, up to a second old, had not."""
        self._stop.set()
        self._thread.join()
        self.samples.append(self.sample())
        return self.samples


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


def tweets_by_host(site: HostedSite, since: float) -> dict[str, int] | None:
    """How many tweets each job worker host posted after `since` (Unix time), by the address
    the fake Twitter saw each come from: a host that posts none while the others post had a job
    worker that ran nothing. None when the hosts share one address (--loopback)."""
    addresses = {host.address: host.name for host in site.worker_hosts}
    if len(addresses) < len(site.worker_hosts):
        return None
    counts = Counter(addresses.get(tweet["sender"]) for tweet in site.twitter.ledger()
                     if datetime.fromisoformat(tweet["received_at"]).timestamp() > since)
    return {name: counts[name] for name in addresses.values()}


def comment_number(text: str) -> int | str:
    found = COMMENT.match(text or "")
    return int(found.group(1)) if found else text


def logged_lost(site: HostedSite) -> set[int]:
    """The comments whose tweets the web logged as lost: Redis refused their jobs, or did not answer.
    The others were lost silently: a Redis server took their jobs, then lost them."""
    web = site.processes.get("web:web")
    comment_ids = {int(found) for found in LOGGED_LOST.findall(web[2].log_text())} if web else set()
    if not comment_ids:
        return set()
    with psycopg.connect(site.database_url) as db:
        bodies = db.execute("SELECT body FROM comments WHERE id = ANY(%s)", (sorted(comment_ids),)).fetchall()
    return {int(body.split()[1]) for (body,) in bodies}


def waiting(site: HostedSite) -> dict[str, set[int | str]]:
    """Which comments' tweets wait where: RQ's queue, its intermediate queue, its started, scheduled
    or failed registry, stage 05's outbox."""
    where: dict[str, set[int | str]] = {}
    try:
        with site.primary() as connection:
            queue = Queue("tweets", connection=connection, serializer=JSONSerializer)
            for name, job_ids in (("queued", queue.get_job_ids()),
                                  ("intermediate", queue.intermediate_queue.get_job_ids()),
                                  ("started", StartedJobRegistry(queue=queue).get_job_ids()),
                                  ("scheduled", ScheduledJobRegistry(queue=queue).get_job_ids()),
                                  ("failed", FailedJobRegistry(queue=queue).get_job_ids())):
                jobs = Job.fetch_many(job_ids, connection=connection, serializer=JSONSerializer)
                # A job's arguments are the tweet's id, its user and its text.
                where[name] = {comment_number(job.args[2]) if job else job_id
                               for job, job_id in zip(jobs, job_ids, strict=True)}
    except redis.RedisError as error:
        where["redis unreachable"] = {str(error)}
    if "relay" in site.stage.processes():
        with psycopg.connect(site.database_url) as db:
            where["outbox"] = {comment_number(row[0]) for row in db.execute("SELECT text FROM outbox")}
    return where


def settled(site: HostedSite, accepted: set[int], quick: bool, quiet: float = QUIET) -> Callable[[], bool]:
    """A condition: every accepted comment is tweeted; or tweets have stopped coming for `quiet`
    seconds and no untweeted comment waits where it will be taken soon: queued, scheduled, or in
    the outbox with no job yet. A full run also waits for the jobs RQ holds for a dead job worker
    (started, intermediate), which RQ runs again a minute or two later."""
    last = {"tweets": -1, "since": time.monotonic()}

    def check() -> bool:
        counts, _ = posted(site)
        untweeted = accepted - set(counts)
        if not untweeted:
            return True
        tweets = sum(counts.values())
        if tweets != last["tweets"]:
            last.update(tweets=tweets, since=time.monotonic())
            return False
        if time.monotonic() - last["since"] < quiet:
            return False
        return not waits_to_run(untweeted, waiting(site), quick)

    return check


def waits_to_run(untweeted: set[int], where: dict[str, set], quick: bool) -> set[int]:
    """The untweeted comments whose jobs a run should still wait for: those queued, scheduled, or in
    the outbox with no job yet; and in a full run, those RQ holds for a job worker that died."""
    where = defaultdict(set, where)
    held_by_rq = where["started"] | where["intermediate"]
    soon = where["queued"] | where["scheduled"] | (where["outbox"] - held_by_rq)
    return untweeted & (soon if quick else soon | held_by_rq)


def reconcile(accepted: set[int], counts: Counter, where: dict[str, set]) -> tuple[list[int], dict, dict]:
    """Of the accepted comments with no tweet: those lost (their job is nowhere), those held (by
    place), those stranded (by place)."""
    untweeted = accepted - set(counts)
    held = by_place(untweeted, where, HELD)
    stranded = by_place(untweeted, where, STRANDED)
    somewhere = set().union(*held.values(), *stranded.values())
    return sorted(untweeted - somewhere), held, stranded


def by_place(untweeted: set[int], where: dict[str, set], places: tuple[str, ...]) -> dict[str, list[int]]:
    return {place: sorted(untweeted & where[place]) for place in places if untweeted & where.get(place, set())}
