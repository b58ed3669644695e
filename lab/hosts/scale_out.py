"""Scale-out: how fast 1, 2 and 4 job worker hosts (and 8, in a full run) drain the backlog a long
outage left.

The site takes a batch of comments while no job worker runs (their hosts were down), so that
their tweets wait in the queue; then job workers start on k hosts, and the lab times the batch
from the moment they were told to start to the last tweet. Each round uses a new batch on the
same site. Twitter answers in 100-200 ms here, so that a job waits on Twitter more than it works,
as the case study's did (1-2 s): adding hosts helps until this machine's cores are busy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from rq import Queue, Worker
from rq.serializers import JSONSerializer

from lab.hosts.reconcile import Watch, logged_lost, posted
from lab.hosts.site import HostedSite
from lab.hosts.verdicts import promise_line
from lab.runtime.process import wait_until
from lab.testing.site_client import SiteClient

NAME = "scale-out"  # the scenario's name on the command line and in the results
ROUNDS = (1, 2, 4)  # job worker hosts in a quick run
FULL_ROUNDS = (1, 2, 4, 8)  # and in a full one
TWITTER_LATENCY_MS = "100-200"
SENDERS = 4  # comments sent at once while the backlog builds


QUICK_BATCH, FULL_BATCH = 60, 300  # tweets in each round's backlog


def queued(site: HostedSite) -> int:
    with site.primary() as connection:
        return Queue("tweets", connection=connection, serializer=JSONSerializer).count


def what_the_lab_sees(site: HostedSite) -> str:
    """For a run that went wrong: which server each Sentinel names, each server's role and queue,
    what the primary holds, what Twitter got, and the last lines of each process."""
    said = {key: process.log_text().splitlines()[-5:] for key, (_, _, process) in site.processes.items()}
    with site.primary() as primary:
        keys, workers = primary.dbsize(), [worker.name for worker in Worker.all(connection=primary)]
    tweets = len(site.twitter.ledger())
    return (f"the Sentinels' primary and each server's [role, queued]: {Watch(site, time.time()).sample()}; "
            f"the primary's keys: {keys}; its job workers: {workers}; tweets posted: {tweets}; "
            f"the last lines of each process: {said}")


def run(site: HostedSite, quick: bool, say: Callable[[str], None] = print) -> dict:
    size = QUICK_BATCH if quick else FULL_BATCH
    client = SiteClient(site.base_url)
    photo = client.new_photo()
    counts = ROUNDS if quick else FULL_ROUNDS
    say(f"{site.stage.name}: a backlog of {size} tweets, drained by "
        f"{', '.join(map(str, counts[:-1]))} and {counts[-1]} job worker hosts in turn")
    rounds, lost, duplicated, number = [], [], [], 0
    for hosts in counts:
        batch = list(range(number + 1, number + size + 1))
        number += size
        with ThreadPoolExecutor(SENDERS) as senders:
            answers = list(senders.map(lambda n: client.comment(photo, f"comment {n}").status_code, batch))
        refused = sum(answer != 303 for answer in answers)
        # Stage 05's relay moves them from the outbox into the queue: wait for all of them there.
        # Stage 04's web request logs a tweet whose job Redis did not take as lost: it never comes.
        expected = size - refused

        def in_the_queue(batch=batch, expected=expected) -> bool:
            return queued(site) + len(logged_lost(site) & set(batch)) >= expected

        try:
            wait_until(in_the_queue, timeout=60, what=f"{expected} tweets queued")
        except TimeoutError as error:
            raise TimeoutError(f"{error}, in the round of {hosts} host(s): {queued(site)} queued, "
                               f"{len(logged_lost(site) & set(batch))} logged "
                               f"as lost; {what_the_lab_sees(site)}") from None
        told = time.time()
        site.start_job_workers(site.worker_hosts[:hosts])

        def drained(batch=batch) -> bool:
            counts, _ = posted(site)
            return set(batch) <= set(counts)

        try:
            wait_until(drained, timeout=600, interval=0.2, what=f"{hosts} job worker hosts drain the backlog")
        except TimeoutError:
            pass
        site.stop_job_workers()
        counts, first = posted(site)
        arrived = sorted(first[n] for n in batch if n in first)
        lost += [n for n in batch if n not in counts]
        duplicated += [n for n in batch if counts[n] > 1]
        drain = arrived[-1] - told if arrived else None
        rounds.append({
            "hosts": hosts, "tweets": len(arrived), "refused": refused,
            "drain": round(drain, 2) if drain else None,
            # from the first tweet to the last: the rate once every job worker is up
            "per_second": round((len(arrived) - 1) / (arrived[-1] - arrived[0]), 1) if len(arrived) > 1 else None,
        })
    return {"stage": site.stage.name, "scenario": NAME, "quick": quick, "batch": size,
            "rounds": rounds, "lost": lost, "duplicated": duplicated, "stranded": {}, "exits": dict(site.exits)}


def verdict_lines(result: dict) -> list[str]:
    first = result["rounds"][0]["per_second"] or 0
    parts = []
    for found in result["rounds"]:
        speed = f"{found['per_second']:g}/s" if found["per_second"] else "-"
        ratio = f", x{found['per_second'] / first:.1f}" if first and found["per_second"] else ""
        drain = f"{found['drain']:g} s" if found["drain"] is not None else "never"
        parts.append(f"{found['hosts']} host{'s' if found['hosts'] > 1 else ''} {drain} ({speed}{ratio})")
    lines = [f"scale-out on {result['stage']}: {result['batch']} tweets drained by " + "; ".join(parts),
             f"  lost {len(result['lost'])}, duplicated {len(result['duplicated'])}"]
    for name in ("lost", "duplicated"):
        if result[name]:
            lines.append(f"  {name}: " + ", ".join(f"comment {n}" for n in result[name][:8]))
    if "defences" in result:
        lines.append(promise_line(result))
    return lines
