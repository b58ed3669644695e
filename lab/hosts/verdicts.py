"""The lab of hosts' verdicts: the defences a run can switch, what each stage promises, and the
lines that say what a run broke, with the ids of the comments.
"""

from __future__ import annotations

from collections import Counter

# The defences a run can switch on or off (`--with`, `--without`), and those on unless told.
DEFENCES = {
    "aof": "Redis keeps an append-only file, written to disk every second (appendfsync everysec)",
    "client-retry": "a job worker that cannot reach the Redis primary asks the Sentinels for it again, about a "
                    "second apart, for 60 s before it exits (the stages' TWITPIC_REDIS_FAILOVER_WAIT: redis-py's "
                    "Retry in RQ's Sentinel settings)",
    "noeviction": "a full Redis refuses new writes, and never deletes a key to make room (maxmemory-policy "
                  "noeviction; without it, allkeys-lru: it deletes the keys least recently used)",
    "supervisor": "a job worker, scheduler or relay that exits is started again, as systemd's Restart=always does",
    "min-replicas": "a Redis server refuses writes while no replica has copied them (min-replicas-to-write 1)",
    "idempotent-record": "a job's run reserves its tweet in the shared database's posted_tweets, and posts "
                         "nothing if it was posted (the stages' record; without it, the lab drops the table's "
                         "key, and every run of a job posts)",
}
DEFAULT_DEFENCES = frozenset({"aof", "client-retry", "idempotent-record", "noeviction", "supervisor"})

# What each stage promises under every fault here, with the defences it ships with on: none of
# these in the verdict. Stage 04 does not promise "none lost": a comment saved while no Redis
# primary takes its job loses its tweet (chapter 04); stage 05's outbox keeps it.
PROMISES = {
    "04-rq": ("duplicated", "stranded"),
    "05-outbox": ("lost", "duplicated", "stranded"),
}


def changed_defences(result: dict) -> list[str]:
    """The run's defences that differ from those the stages ship with: ["with min-replicas"]."""
    on = set(result["defences"].split(", "))
    return [f"{'with' if name in on else 'without'} {name}" for name in DEFENCES
            if (name in on) != (name in DEFAULT_DEFENCES)]


def comments_in(places: dict[str, list]) -> int:
    """How many comments wait in these places: a job may wait in two (started, and the outbox)."""
    return len(set().union(*places.values()))


def broken_promises(result: dict) -> list[str]:
    """The promises of `result`'s stage that its run broke, as "lost 3": none when a defence the stage
    ships with was switched off, since it promises nothing without it."""
    if not DEFAULT_DEFENCES <= set(result["defences"].split(", ")):
        return []
    counts = {"lost": len(result["lost"]), "duplicated": len(result["duplicated"]),
              "stranded": comments_in(result.get("stranded", {}))}
    return [f"{name} {counts[name]}" for name in PROMISES.get(result["stage"], ()) if counts[name]]


def promise_line(result: dict) -> str:
    promised = PROMISES.get(result["stage"], ())
    if not DEFAULT_DEFENCES <= set(result["defences"].split(", ")):
        return "  promises: not checked, a defence the stage ships with is off"
    broken = broken_promises(result)
    if broken:
        return f"  promises: BROKEN, {', '.join(broken)} (it promises none {', none '.join(promised)})"
    return f"  promises: kept (none {', none '.join(promised)})"


def ids(numbers: list[int], most: int = 8) -> str:
    shown = ", ".join(f"comment {number}" for number in numbers[:most])
    return shown + (", ..." if len(numbers) > most else "")


def verdict_lines(result: dict) -> list[str]:
    """The verdict: two lines of counts, then the ids of the comments lost, duplicated, held or stranded."""
    held, stranded = comments_in(result["held"]), comments_in(result["stranded"])
    recovery = "never" if result["recovery"] is None else f"{result['recovery']:g} s"
    by_line = Counter()
    for key, count in result["exits"].items():
        by_line[key.split(":")[1]] += count  # host:line
    exits = ", ".join(f"{line} {count}" for line, count in sorted(by_line.items())) or "none"
    defences = f" [{result['defences']}]" if result.get("defences") else ""
    logged = f" ({len(result['lost_logged'])} logged)" if result["lost"] and "lost_logged" in result else ""
    lines = [
        f"{result['scenario']} on {result['stage']}{defences}: lost {len(result['lost'])}{logged}, "
        f"duplicated {len(result['duplicated'])}, held {held}, stranded {stranded}",
        f"  recovery {recovery}, refused {sum(result['refused'].values())} of {result['comments']}, "
        f"repeats refused {result['repeats_refused']}, exited: {exits}",
    ]
    if result.get("tweets_by_host"):
        by_host = ", ".join(f"{host} {count}" for host, count in result["tweets_by_host"].items())
        lines.append(f"  tweets after the fault, by job worker host: {by_host}")
    if result.get("in_hand"):
        number, times = result["in_hand"]
        lines.append(f"  the job in hand at the fault, comment {number}: tweeted {times} time{'s' * (times != 1)}")
    for name in ("lost", "duplicated"):
        if result[name]:
            lines.append(f"  {name}: {ids(result[name])}")
    for kind in ("held", "stranded"):
        for where, found in result[kind].items():
            lines.append(f"  {kind} ({where}): {ids(found)}")
    if "defences" in result:
        lines.append(promise_line(result))
    return lines
