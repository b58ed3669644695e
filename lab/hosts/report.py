"""The lab of hosts' committed run, as the site shows it.

`workbook hosts --publish` runs the committed set (`PUBLISHED`): every scenario on stages 04 and
05 with the defences they ship, and each scenario again with the one defence that changes it. It
writes `docs/results/hosts.json`, then this module writes from it:

- `docs/generated/hosts-<scenario>.txt`: the verdicts, as the command prints them, for chapter 06;
- `docs/results/hosts.md`: a table per scenario, stages side by side, with and without the defence;
- `docs/results/hosts/*.png`: each comment's wait for its tweet, by when it was made, per scenario;
  and the scale-out curve.

`workbook generate-docs` rewrites the text files from the committed JSON (the pictures come only
from `--publish`), and a test fails when they are stale.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from lab.hosts import scale_out
from lab.hosts.scenarios import SCENARIOS
from lab.hosts.verdicts import DEFAULT_DEFENCES, DEFENCES, changed_defences, comments_in, verdict_lines
from lab.runtime.stages import REPO_ROOT

RESULTS = REPO_ROOT / "docs" / "results" / "hosts.json"
PAGE = REPO_ROOT / "docs" / "results" / "hosts.md"
IMAGES = REPO_ROOT / "docs" / "results" / "hosts"
GENERATED = REPO_ROOT / "docs" / "generated"
STAGES = ("04-rq", "05-outbox")

# The committed set: (scenario, defences switched on, defences switched off), each on both stages.
PUBLISHED = [
    *[(name, (), ()) for name in SCENARIOS],
    ("failover", (), ("client-retry",)),
    ("failover", (), ("client-retry", "supervisor")),
    ("partition", ("min-replicas",), ()),
    ("memory-full", (), ("noeviction",)),
    ("restart", (), ("aof",)),
    ("worker-cut", (), ("idempotent-record",)),
    (scale_out.NAME, (), ()),
]


def defences_text(switch_on, switch_off) -> str:
    return ", ".join(sorted((DEFAULT_DEFENCES | set(switch_on)) - set(switch_off)))


def console_path(scenario: str) -> Path:
    return GENERATED / f"hosts-{scenario}.txt"


def verdicts(result: dict) -> list[str]:
    return scale_out.verdict_lines(result) if result["scenario"] == scale_out.NAME else verdict_lines(result)


def command(scenario: str, switch_on=(), switch_off=(), quick: bool = False) -> str:
    words = ["$ workbook hosts", f"--scenario {scenario}", *(f"--with {d}" for d in switch_on),
             *(f"--without {d}" for d in switch_off), *(["--quick"] if quick else [])]
    return " ".join(words)


def console_texts(results: list[dict]) -> dict[str, str]:
    """Per scenario, its runs as the terminal showed them, one command per set of defences."""
    texts: dict[str, list[str]] = defaultdict(list)
    for name, switch_on, switch_off in PUBLISHED:
        wanted = defences_text(switch_on, switch_off)
        runs = [r for r in results if r["scenario"] == name and r["defences"] == wanted]
        if not runs:
            continue
        if texts[name]:
            texts[name].append("")
        texts[name].append(command(name, switch_on, switch_off, quick=runs[0]["quick"]))
        for result in runs:
            texts[name] += verdicts(result)
    return {name: "\n".join(lines) + "\n" for name, lines in texts.items()}


def recovery_text(result: dict) -> str:
    return "never" if result["recovery"] is None else f"{result['recovery']:g}"


def exits_text(result: dict) -> str:
    return str(sum(result["exits"].values()))


ROWS = [
    ("comments sent", lambda r: str(r["comments"])),
    ("accepted by the site", lambda r: str(r["accepted"])),
    ("**lost** (accepted, no tweet, no job anywhere)", lambda r: f"**{len(r['lost'])}**"),
    ("of them, logged as lost by the web request (Redis refused it, or did not answer)",
     lambda r: str(len(r["lost_logged"])) if "lost_logged" in r else "-"),
    ("duplicated (tweeted twice)", lambda r: str(len(r["duplicated"]))),
    ("repeats Twitter refused", lambda r: str(r["repeats_refused"])),
    ("held (no tweet yet; RQ or the relay will run it)", lambda r: str(comments_in(r["held"]))),
    ("stranded (in the failed registry)", lambda r: str(comments_in(r["stranded"]))),
    ("recovery: fault to the first tweet of a comment made after it (s)", recovery_text),
    ("comments refused", lambda r: str(sum(r["refused"].values()))),
    ("job workers, scheduler, relay exited", exits_text),
]


def column_name(result: dict) -> str:
    changed = changed_defences(result)
    return f"`{result['stage']}`" + (f" {', '.join(changed)}" if changed else "")


def scenario_table(runs: list[dict]) -> list[str]:
    lines = ["| | " + " | ".join(column_name(r) for r in runs) + " |",
             "|---|" + "--:|" * len(runs)]
    for label, value in ROWS:
        lines.append(f"| {label} | " + " | ".join(value(r) for r in runs) + " |")
    return lines


def scale_out_table(runs: list[dict]) -> list[str]:
    lines = ["| job worker hosts | " + " | ".join(f"`{r['stage']}` drain (s) | `{r['stage']}` tweets/s"
                                                  for r in runs) + " |",
             "|--:|" + "--:|--:|" * len(runs)]
    for index, hosts in enumerate(r["hosts"] for r in runs[0]["rounds"]):  # a quick run has fewer
        cells = []
        for result in runs:
            found = result["rounds"][index]
            cells += [f"{found['drain']:g}" if found["drain"] is not None else "never",
                      f"{found['per_second']:g}" if found["per_second"] else "-"]
        lines.append(f"| {hosts} | " + " | ".join(cells) + " |")
    return lines


def ordered(results: list[dict]) -> dict[str, list[dict]]:
    """Runs by scenario, each scenario's runs in the committed set's order, stages side by side."""
    found: dict[str, list[dict]] = defaultdict(list)
    for name, switch_on, switch_off in PUBLISHED:
        wanted = defences_text(switch_on, switch_off)
        found[name] += [r for stage in STAGES for r in results
                        if r["scenario"] == name and r["defences"] == wanted and r["stage"] == stage]
    return {name: runs for name, runs in found.items() if runs}


def page_text(results: list[dict]) -> str:
    quick = any(r["quick"] for r in results)
    lines = [
        "# The lab of hosts: the committed run",
        "",
        "Stages 04 and 05, unchanged, on machines of their own (`workbook hosts`, "
        "[chapter 06](../chapters/06-beyond.md#run-it-faults-on-eight-hosts)). Each scenario sends a numbered "
        "comment at a steady rate, makes one fault, and reconciles what the site accepted with what the fake "
        "Twitter posted and what Redis and the database still hold.",
        "",
    ]
    if quick:
        lines += ["!!! warning \"A quick run\"",
                  "    Every scenario ran in its quick form: the run stops waiting before RQ runs again the jobs "
                  "it holds for a job worker that died (a minute or two later). Those jobs are counted as "
                  "**held**, not lost.", ""]
    lines += ["The defences the stages ship with are on unless a column says otherwise: "
              + "; ".join(f"**{name}**: {DEFENCES[name]}" for name in sorted(DEFAULT_DEFENCES)) + ".", ""]
    for name, runs in ordered(results).items():
        if name == scale_out.NAME:
            lines += ["## scale-out", "", scale_out.__doc__.split("\n\n")[1].replace("\n", " "), "",
                      f"A batch of {runs[0]['batch']} tweets per round.", "", *scale_out_table(runs), "",
                      f"![Drain time and tweets per second against job worker hosts]({IMAGES.name}/scale-out.png)",
                      ""]
            continue
        scenario = SCENARIOS[name]
        lines += [f"## {name}", "", scenario.describe()[0].upper() + scenario.describe()[1:] + ".", "",
                  *scenario_table(runs), "",
                  f"![Each comment's wait for its tweet, by when it was made]({IMAGES.name}/{name}.png)", "",
                  "Host by host, with the defences the stages ship: which server each Sentinel named the primary, "
                  "each Redis server's role and the jobs queued on it, twice a second, and the tweets Twitter "
                  "received each second.", "",
                  f"![What each host saw, twice a second]({IMAGES.name}/{name}-hosts.png)", ""]
    lines += ["The run's whole record, with the ids of every comment and what the lab saw twice a second: "
              f"[hosts.json]({RESULTS.name}).", ""]
    return "\n".join(lines)


def write_from_committed_results() -> list[Path]:
    results = json.loads(RESULTS.read_text())
    written = []
    for name, text in console_texts(results).items():
        console_path(name).write_text(text)
        written.append(console_path(name))
    PAGE.write_text(page_text(results))
    return [*written, PAGE]


def publish(results: list[dict]) -> list[Path]:
    from lab.hosts import plots

    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    IMAGES.mkdir(exist_ok=True)
    for name, runs in ordered(results).items():
        plots.plot(name, runs, IMAGES)
    return write_from_committed_results()
