"""The drill's verdicts: for each stage and run, did each promise hold, and which tweets broke it.

Three promises, each the drill's view of one of the stages' invariants:

- `lost none`: every tweet asked for is on Twitter (test_no_tweet_is_lost_during_an_outage);
- `posted none twice`: no tweet is on Twitter twice (test_no_tweet_is_posted_twice_with_many_workers).
  A repeat that the fake Twitter refused is not on Twitter: it is counted, as a duplicate post
  attempted, but it does not break the promise;
- `available`: during the outage, page views answered OK within a second, nearly all of them
  (test_site_stays_up_while_twitter_hangs).

Which promises a stage makes is read from the stage itself: an invariant its tests mark as a strict
expected failure is one it is known to break, and its marker's reason says why. A stage that
breaks a promise it makes fails the drill; one that breaks a promise it is known to break shows
the lesson, and says so.
"""

from __future__ import annotations

import ast

from lab.runtime.stages import Stage, StageError, all_stages

AVAILABLE_AT_LEAST = 0.99  # share of page views answered OK within a second during the outage

# promise -> the invariant test that makes it, in every stage's tests/test_invariants.py
PROMISES = {
    "lost none": "test_no_tweet_is_lost_during_an_outage",
    "posted none twice": "test_no_tweet_is_posted_twice_with_many_workers",
    "available": "test_site_stays_up_while_twitter_hangs",
}
HOLDS, BROKEN, KNOWN = "holds", "broken", "broken (known)"
SUMMARY_ROW = "the promises it makes"  # the last row, on the results page, the home page and the terminal
SHOWN_IDS = 10  # IDs listed per broken promise; the count says how many in all


def known_broken(stage: Stage) -> dict[str, str]:
    """The stage's strict xfails among its invariants: test name -> the marker's reason."""
    tree = ast.parse((stage.path / "tests" / "test_invariants.py").read_text())
    reasons = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "pytest.mark.xfail":
                keywords = {k.arg: k.value for k in decorator.keywords}
                reasons[node.name] = ast.literal_eval(keywords["reason"]) if "reason" in keywords else ""
    return reasons


def tweet_id(text: str) -> str:
    """`drill <label> comment 17` -> `comment 17`: the request that asked for the tweet."""
    return " ".join(text.split()[-2:])


def verdict(stage: Stage, summary: dict, posted: dict[str, list], excused: dict[str, str] | None = None) -> dict:
    """One run's verdict for one stage: every promise, holds or broken, with the IDs that broke it.

    `excused`: tweets whose loss the scenario explains (text -> why), such as those asked for while
    the queue server was down; they are known losses, not broken promises.
    """
    excused = excused or {}
    lost = sorted((tweet_id(text) for text, tweets in posted.items() if not tweets and text not in excused),
                  key=_natural)
    lost_excused = {text: excused[text] for text, tweets in posted.items() if not tweets and text in excused}
    twice = sorted((tweet_id(text) for text, tweets in posted.items() if len(tweets) > 1), key=_natural)
    availability = summary.get("availability_during_outage")
    broken_by = {
        "lost none": lost,
        "posted none twice": twice,
        "available": [] if availability is None or availability >= AVAILABLE_AT_LEAST else [f"{availability:.1%}"],
    }
    known = known_broken(stage)
    promises = {}
    for promise, test in PROMISES.items():
        ids = broken_by[promise]
        entry: dict = {"verdict": HOLDS if not ids else (KNOWN if test in known else BROKEN)}
        if ids:
            entry["count"] = len(ids) if promise != "available" else None
            entry["ids"] = ids[:SHOWN_IDS]
        if test in known:
            entry["known_broken"] = known[test]
        if promise == "lost none" and lost_excused and not ids:  # lost only as the scenario explains
            entry = {
                "verdict": KNOWN, "count": len(lost_excused), "known_broken": next(iter(lost_excused.values())),
                "ids": sorted(map(tweet_id, lost_excused), key=_natural)[:SHOWN_IDS],
            }
        if promise == "posted none twice" and summary.get("repeats_refused"):
            entry["refused"] = summary["repeats_refused"]  # duplicate posts that Twitter stopped
        promises[promise] = entry
    return {"promises": promises, "held": all(p["verdict"] != BROKEN for p in promises.values())}


def _natural(tweet: str) -> tuple:
    kind, _, number = tweet.rpartition(" ")
    return (kind, int(number)) if number.isdigit() else (tweet, 0)


def fixed_in(stage_name: str, promise: str) -> str | None:
    """The first later stage that makes `promise`, when `stage_name` breaks it on purpose."""
    try:
        stages = all_stages()
        names = [stage.name for stage in stages]
        if PROMISES[promise] not in known_broken(stages[names.index(stage_name)]):
            return None
    except (ValueError, StageError):
        return None
    return next((stage.name for stage in stages[names.index(stage_name) + 1:]
                 if PROMISES[promise] not in known_broken(stage)), None)


def describe(entry: dict, stage: str | None = None, promise: str | None = None) -> str:
    """One stage's verdict on one promise, as the terminal and the page show it: `holds`; `broken:
    comment 3, comment 9 (2)`; or, for a promise the stage breaks on purpose, `broken on purpose,
    fixed in 03-kestrel`, with what this run saw. Never "holds" for a promise the stage does not make."""
    count = entry.get("refused", 0)
    refused = f"Twitter refused {count} repeat{'s' if count != 1 else ''}" if count else ""
    ids = ", ".join(entry.get("ids", []))
    if promise == "available" and ids:
        ids += " of page views answered within a second"
    more = f" ({', '.join(filter(None, [str(entry['count']) if entry.get('count') else '', refused]))})" \
        if entry.get("count") or refused else ""
    fixer = fixed_in(stage, promise) if stage and promise else None
    if "known_broken" in entry and fixer is None and stage and promise:
        # a loss the scenario explains, in a stage that makes the promise
        return f"broken as the scenario explains ({entry['known_broken']}): {ids}{more}"
    if "known_broken" in entry:
        on_purpose = "broken on purpose" + (f", fixed in {fixer}" if fixer else "")
        if entry["verdict"] == HOLDS:
            return f"{on_purpose}; not seen in this run" + (f" ({refused})" if refused else "")
        return f"{on_purpose}: {ids}{more}"
    if entry["verdict"] == HOLDS:
        return HOLDS + (f" ({refused})" if refused else "")
    return f"{entry['verdict']}: {ids}{more}"


def stage_holds(runs: list[dict]) -> int:
    """How many of a stage's runs kept every promise the stage makes."""
    return sum(run["held"] for run in runs)


def promises_made(stage: str) -> list[str]:
    """The drill's promises that `stage` makes: those it does not break on purpose."""
    try:
        known = known_broken(Stage.find(stage))
    except StageError:
        known = {}
    return [promise for promise, test in PROMISES.items() if test not in known]


def promise_summary(stage: str, runs: list[dict]) -> str:
    """Did the stage keep the promises it makes? The same words on the results page, the home page
    and in the terminal: `kept the 2 it makes; breaks 1 on purpose`."""
    made = promises_made(stage)
    on_purpose = len(PROMISES) - len(made)
    purpose = f"; breaks {on_purpose} on purpose" if on_purpose else ""
    if not made:
        return f"makes none of the {len(PROMISES)}: breaks them on purpose"
    held = stage_holds(runs)
    if held == len(runs):
        kept = f"kept the {len(made)} it makes" if len(made) < len(PROMISES) else f"kept all {len(made)}"
        return kept + (f" in {held} of {len(runs)} runs" if len(runs) > 1 else "") + purpose
    broke = len(runs) - held
    return f"BROKE one it makes, in {broke} of {len(runs)} run{'s' if len(runs) > 1 else ''}" + purpose


# -- showing them ---------------------------------------------------------------------------------


def cell(runs: list[dict], promise: str, stage: str | None = None) -> str:
    """One stage's verdict on one promise: the run's, or each run's when there were several."""
    entries = [run["promises"][promise] for run in runs]
    if len(entries) == 1:
        return describe(entries[0], stage, promise)
    if all(entry["verdict"] == HOLDS and "known_broken" not in entry for entry in entries):
        return f"holds in {len(entries)} of {len(entries)} runs"
    return "; ".join(f"run {n}: {describe(entry, stage, promise)}" for n, entry in enumerate(entries, 1))


def rows(results: dict) -> list[list[str]]:
    """A row per promise, a column per stage, and a last row: did the stage keep what it promises?"""
    stages = results["stages"]
    table = [[promise] + [cell(stage["runs"], promise, name) for name, stage in stages.items()]
             for promise in PROMISES]
    table.append([SUMMARY_ROW] + [promise_summary(name, stage["runs"]) for name, stage in stages.items()])
    return table


def known_lines(results: dict) -> list[str]:
    """Why each known-broken promise is broken, in the stage's own words (its xfail reasons)."""
    lines = []
    for name, stage in results["stages"].items():
        for promise, entry in stage["runs"][-1]["promises"].items():
            if "known_broken" in entry:
                lines.append(f"- `{name}`, {promise}: {entry['known_broken']}")
    return lines


def markdown(results: dict) -> str:
    if not all("runs" in stage for stage in results["stages"].values()):
        return "This run was recorded before the drill gave verdicts."
    stages = list(results["stages"])
    lines = [
        "| promise | " + " | ".join(f"`{stage}`" for stage in stages) + " |",
        "|---|" + "---|" * len(stages),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    return "\n".join(lines + ["", "Broken on purpose, and why (each stage's strict expected failures, "
                               "in its own words):", ""] + known_lines(results))


def print_verdicts(results: dict, console) -> list[str]:
    """The verdicts as a terminal table; the stages that broke a promise they make."""
    from rich.table import Table

    table = Table(title="Promises kept")
    table.add_column("promise", style="bold")
    for stage in results["stages"]:
        table.add_column(stage)
    for row in rows(results):
        table.add_row(*row)
    console.print(table)
    broken = [name for name, stage in results["stages"].items() if stage_holds(stage["runs"]) < len(stage["runs"])]
    if broken:
        console.print(f"[bold red]broken: {', '.join(broken)} did not keep a promise it makes[/]")
    return broken
