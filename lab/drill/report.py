"""The outage drill's report: `results.json` as a table, two charts and a page for the site.

The drill runs every stage under the same failure (the fake Twitter hangs for a while) and saves
what happened as one dict (see `results.json`). This module only reads that dict:

- `markdown_table` and `print_summary` show each stage's summary side by side;
- the two charts come from plots.py;
- `write_results_page` puts the table and both charts on one Markdown page.

Numbers appear only in the table and the charts, so the page's prose stays true whatever a run
measured.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lab.drill import verdicts
from lab.drill.plots import BACKLOG_IMAGE, LATENCY_IMAGE, plot_backlog, plot_latency
from lab.drill.scenarios import SCENARIOS

# Every summary key the drill writes, in the order the table shows them, with a short header.
SUMMARY_COLUMNS: list[tuple[str, str]] = [
    ("comment_p50_ms_normal", "comment p50 normal (ms)"),
    ("comment_p99_ms_normal", "comment p99 normal (ms)"),
    ("comment_p50_ms_outage", "comment p50 outage (ms)"),
    ("comment_p99_ms_outage", "comment p99 outage (ms)"),
    ("comment_p50_ms_recovery", "comment p50 recovery (ms)"),
    ("comment_p99_ms_recovery", "comment p99 recovery (ms)"),
    ("upload_p50_ms_normal", "upload p50 normal (ms)"),
    ("availability_during_outage", "availability during outage"),
    ("errors", "errors and timeouts"),
    ("tweets_expected", "tweets expected"),
    ("tweets_posted", "tweets posted"),
    ("tweets_lost", "tweets lost"),
    ("tweets_duplicated", "tweets duplicated"),
    ("repeats_refused", "repeats Twitter refused"),
    ("duplicate_posts", "duplicate posts (on Twitter, or refused)"),
    ("peak_backlog", "peak backlog"),
    ("drain_seconds", "drain time (s)"),
]

MISSING = "-"  # a value the run could not measure (no comment answered, never drained, ...)
NOT_APPLICABLE = "n/a"
# Figures that mean nothing for a stage: stage 01 has no queue, so no backlog to peak or drain (its
# backlog chart counts the calls held at Twitter instead). The replay (drill-viewer.js) says the same.
DOES_NOT_APPLY = {"01-naive": ("peak_backlog", "drain_seconds")}

# The page's guide to the charts. It states no number: the numbers live in the table.
HOW_TO_READ = (
    "**How to read this.** In the table, each row is one measure and each column one stage; "
    "a dash means there was nothing to measure (no comment answered in that phase, or the "
    "backlog never drained), and n/a that the figure does not apply (the first stage has no queue). "
    "Drain time runs from the end of the outage until the last tweet "
    "asked for was on Twitter (for a stage that lost some, until its backlog emptied). "
    "In the latency chart, every dot is one request, placed at the "
    "moment it started and as high as it took to answer, on a log scale; grey dots are page "
    "views, red crosses along the dashed line are requests the client gave up on, and red "
    "triangles are requests answered with an error. The shaded band is the outage (the scenario "
    "above says what the fake Twitter does during it). A stage that calls Twitter inside the "
    "web request shows its comments and uploads climbing to the timeout line during the band, "
    "and its page views suffer too once every web worker is stuck waiting. A stage that hands "
    "the call to a background job keeps answering quickly; its cost moves to the backlog chart, "
    "where jobs pile up during the band and drain after it."
)

REPLAY_INTRO = (
    "Play the run back: each stage's requests appear as they were answered, its web workers and job "
    "workers turn red while they wait on Twitter, and its backlog fills and drains. The figures under "
    "each stage are counted from the samples, and at the end they equal the table's."
)


# -- the numbers --------------------------------------------------------------------------------


def format_value(key: str, value) -> str:
    """One summary value as a person reads it: whole milliseconds, percentages, counts."""
    if value is None:
        return MISSING
    if "_ms_" in key:
        return f"{value:.0f}"
    if key.startswith("availability"):
        return f"{value * 100:.0f} %"
    if key.endswith("_seconds"):
        return f"{value:.1f}"
    return str(value)


def shown_value(stage: str, key: str, value) -> str:
    """A stage's summary value as the table shows it: n/a where the figure does not apply."""
    return NOT_APPLICABLE if key in DOES_NOT_APPLY.get(stage, ()) else format_value(key, value)


def summary_rows(results: dict) -> list[list[str]]:
    """One row per stage: the stage's name, then one formatted value per `SUMMARY_COLUMNS` entry."""
    rows = []
    for stage, measured in results["stages"].items():
        summary = measured.get("summary", {})
        rows.append([stage] + [shown_value(stage, key, summary.get(key)) for key, _ in SUMMARY_COLUMNS])
    return rows


def metric_rows(results: dict) -> list[list[str]]:
    """The summary turned on its side: one row per metric, its header then one value per stage."""
    values_by_stage = [row[1:] for row in summary_rows(results)]
    return [
        [header] + [values[index] for values in values_by_stage]
        for index, (_, header) in enumerate(SUMMARY_COLUMNS)
    ]


def markdown_table(results: dict) -> str:
    """The summary with the stages side by side: it fits a narrow page better than a wide row."""
    stages = list(results["stages"])
    lines = [
        "| metric | " + " | ".join(stages) + " |",
        "|---|" + "--:|" * len(stages),  # numbers right-aligned, so their digits line up
    ]
    lines += ["| " + " | ".join(row) + " |" for row in metric_rows(results)]
    return "\n".join(lines)


def print_summary(results: dict, console: Console) -> None:
    """The same table as the page's, in the terminal."""
    quick = ""
    if results.get("quick"):
        quick = f", a quick run: every delay {1 / results['time_scale']:g} times shorter"
    table = Table(title=f"Outage drill: {results.get('scenario', '?')}{quick}")
    table.add_column("metric", style="bold")
    for stage in results["stages"]:
        table.add_column(stage, justify="right")
    for row in metric_rows(results):
        table.add_row(*row)
    console.print(table)


# -- the page -----------------------------------------------------------------------------------


def readable_date(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return str(text)
    zone = f" {moment.tzname()}" if moment.tzinfo else ""
    return moment.strftime("%Y-%m-%d %H:%M") + zone


def phases_text(results: dict) -> str:
    return ", ".join(
        f"{phase['name']} {phase['start']:g}-{phase['end']:g} s" for phase in results["phases"]
    )


def what_was_run(results: dict) -> str:
    """The page's first paragraph: enough to tell two runs apart, or to repeat one."""
    run = "a quick run" if results.get("quick") else "a full run"
    text = (
        f"Scenario **{results['scenario']}**: {results['description']}. "
        f"Run {readable_date(results['date'])} on {results['cpus']} CPUs, "
        f"{results['web_workers']} web workers per stage, {run}, "
        f"time scale {results['time_scale']:g} (1 is the case study's real timings). "
        + (
            "Twitter refused a repeated status, as the real one did."
            if results.get("twitter_refuses_duplicates", False)
            else "Twitter accepted repeated statuses, so every repeat shows as a duplicate."
        )
    )
    if results.get("phases"):
        text += f" Phases, in seconds from the start of each stage's load: {phases_text(results)}."
    return text


def relative_link(target: Path, page_path: Path) -> str:
    """A link from the page to a file, as Markdown wants it: relative, with forward slashes."""
    return Path(os.path.relpath(target, page_path.parent)).as_posix()


def _ratio(slow: float | None, fast: float | None) -> str:
    return "-" if not slow or not fast else f"{slow / fast:.0f}x"


def claims_markdown(results: dict) -> str:
    """The case study's claims next to what this run measured (computed, never typed in)."""
    stages = results["stages"]
    naive = stages.get("01-naive", {}).get("summary")
    queued = {name: stage["summary"] for name, stage in stages.items() if name != "01-naive"}
    if naive is None or not queued:
        return ""
    rows = ["| the case study says | this run measured |", "|---|---|"]
    for name, summary in queued.items():
        rows.append(
            f"| comments went through \"instantly\" | {name}: comment p50 "
            f"{_fmt_ms(summary['comment_p50_ms_normal'])} ms "
            f"against {_fmt_ms(naive['comment_p50_ms_normal'])} ms in 01-naive "
            f"({_ratio(naive['comment_p50_ms_normal'], summary['comment_p50_ms_normal'])} faster) |"
        )
    for name, summary in queued.items():
        before, after = naive["upload_p50_ms_normal"], summary["upload_p50_ms_normal"]
        saved = "-" if not before or after is None else f"{100 * (before - after) / before:.0f} %"
        rows.append(
            f"| images uploaded 25 % faster | {name}: upload p50 {_fmt_ms(after)} ms against "
            f"{_fmt_ms(before)} ms, {saved} less (here the upload is tiny, so the call is almost all of it) |"
        )
    rows.append(
        "| when Twitter went down, the site went down | availability during the outage: "
        + ", ".join(f"{name} {_fmt_share(stage['summary']['availability_during_outage'])}"
                    for name, stage in stages.items())
        + " |"
    )
    rows.append(
        "| tweets were lost; with Kestrel, \"no more data loss\" | tweets lost: "
        + ", ".join(f"{name} {stage['summary']['tweets_lost']} of {stage['summary']['tweets_expected']}"
                    for name, stage in stages.items())
        + " |"
    )
    rows.append(
        "| a jobs table with several workers posted duplicate tweets | duplicate posts (of them on "
        "Twitter): "
        + ", ".join(f"{name} {format_value('duplicate_posts', stage['summary'].get('duplicate_posts'))} "
                    f"({stage['summary']['tweets_duplicated']})" for name, stage in stages.items())
        + " |"
    )
    return "\n".join(rows)


def _fmt_ms(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def _fmt_share(value) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def scenarios_markdown() -> str:
    """How to run the drill again, with every scenario it knows (from the code, so never stale)."""
    lines = [
        "## Run it yourself",
        "",
        "`make drill` runs the scenario above on every stage and writes its own copy of this page into "
        "`drill-results/drill.md`; `make drill DRILL_ARGS=--quick` runs the same story five times faster. "
        "`workbook drill --scenario NAME --stages 01-naive,04-rq` runs one scenario on some stages:",
        "",
        "| scenario | what happens |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {scenario.description} |" for name, scenario in sorted(SCENARIOS.items())]
    lines += [
        "",
        "By default the fake Twitter refuses [a repeat](../reference/twitter.md#repeats), as the real "
        "one did and as stages 03 to 05 count on: a duplicate post then shows as a repeat refused, "
        "not as a second tweet, and \"duplicate posts\" counts both. `--twitter-duplicates accept` "
        "makes it take every repeat. `--runs N` runs the scenario N times per stage and says how "
        "many runs kept each promise; the drill exits non-zero when a stage breaks a promise it makes.",
    ]
    return "\n".join(lines)


def quick_run_warning(results: dict) -> list[str]:
    """A quick run's figures are the story at another speed: said above them, not only in the text."""
    if not results.get("quick"):
        return []
    return [
        '!!! warning "A quick run"',
        f"    Every delay of the story ran {1 / results['time_scale']:g} times shorter: Twitter's latency, "
        "the outage, the timeouts. Compare its figures with another quick run, not with the site's full run.",
        "",
    ]


def write_results_page(results: dict, out_dir: Path | str, page_path: Path | str) -> None:
    """Draw both charts into `out_dir` and write the page that shows them with the table."""
    out_dir, page_path = Path(out_dir), Path(page_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    page_path.parent.mkdir(parents=True, exist_ok=True)
    latency_png, backlog_png = out_dir / LATENCY_IMAGE, out_dir / BACKLOG_IMAGE
    plot_latency(results, latency_png)
    plot_backlog(results, backlog_png)

    lines = [
        "# The outage drill",
        "",
        *quick_run_warning(results),
        what_was_run(results),
        "",
        markdown_table(results),
        "",
        "## Promises kept",
        "",
        "For each stage, whether each of its promises held in this run, with the requests whose "
        "tweets broke it (`comment 17` is the 17th comment of the load).",
        "",
        verdicts.markdown(results),
        "",
        "## The case study's claims, checked",
        "",
        claims_markdown(results),
        "",
        "## The run, replayed",
        "",
        REPLAY_INTRO,
        "",
        '<div class="drill-viewer" markdown>',
        "",
        f"The replay needs JavaScript; the charts below show the same run, and "
        f"[results.json]({relative_link(out_dir / 'results.json', page_path)}) holds every sample of it.",
        "",
        "</div>",
        "",
        "The same run, still: every request, then the backlog.",
        "",
        f"![Latency of every request, per stage, with the outage shaded]"
        f"({relative_link(latency_png, page_path)})",
        "",
        f"![Backlog over time, one line per stage, with the outage shaded]"
        f"({relative_link(backlog_png, page_path)})",
        "",
        HOW_TO_READ,
        "",
        scenarios_markdown(),
        "",
    ]
    page_path.write_text("\n".join(lines))
