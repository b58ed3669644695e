"""`workbook drill`: start each stage, drive the same load, script the same outage, measure.

For each stage: the fake Twitter and the stage's Procfile processes on free ports (web under
gunicorn with the same fixed number of workers for every stage), a photo to comment on, then the
load and the scenario's phases; afterwards it waits (with a bound) for the backlog to drain,
stops everything, and moves on. Ctrl-C stops whatever is running.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.live import Live

from lab.drill import headline as drill_headline
from lab.drill import report, verdicts
from lab.drill.board import Board, Watchers
from lab.drill.live import LiveFeed
from lab.drill.load import CLIENT_TIMEOUT, rates
from lab.drill.scenarios import SCENARIOS, Scenario
from lab.drill.stage_run import AVAILABLE_WITHIN, BACKGROUND_WORKERS, WEB_WORKERS, run_stage
from lab.runtime.stages import Stage, all_stages

QUICK_SCALE = 0.2  # --quick: the same story five times faster
DEFAULT_SCENARIO = "hang"  # the case study's outage, and the site's committed run


def planned_phases(scenario: Scenario, scale: float) -> list[dict]:
    """The scenario's phases in load seconds, as planned (each stage records what it measured)."""
    phases, at = [], 0.0
    for phase in scenario.phases:
        phases.append({"name": phase.name, "start": round(at, 3), "end": round(at + phase.seconds * scale, 3)})
        at += phase.seconds * scale
    return phases


def run_drill(
    stages: list[Stage],
    scenario: Scenario,
    scale: float,
    quick: bool,
    console: Console,
    refuse_duplicates: bool = True,
    runs: int = 1,
    live_feed: LiveFeed | None = None,
) -> dict:
    results = {
        "scenario": scenario.name,
        "description": scenario.description,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "quick": quick,
        "time_scale": scale,
        "web_workers": WEB_WORKERS,
        "client_timeout": CLIENT_TIMEOUT,
        "available_within": AVAILABLE_WITHIN,
        "rates_per_second": rates(scale),
        "background_workers": BACKGROUND_WORKERS,
        "twitter_refuses_duplicates": refuse_duplicates,
        "runs": runs,
        "phases": planned_phases(scenario, scale),
        "stages": {},
    }
    if live_feed is not None:
        live_feed.start_drill({key: value for key, value in results.items() if key != "stages"},
                              [stage.name for stage in stages])
    with Live(console=console, refresh_per_second=4, transient=True) as live:
        board = Board(live, scenario.description)
        watchers = Watchers(board, live_feed) if live_feed is not None else board
        for stage in stages:
            verdicts_of_runs = []
            for run in range(1, runs + 1):
                outcome = run_stage(stage, scenario, scale, watchers, console, refuse_duplicates)
                verdicts_of_runs.append(outcome["verdict"])
                s = outcome["summary"]
                peak = report.shown_value(stage.name, "peak_backlog", s["peak_backlog"])
                console.print(
                    f"{stage.name}{f' run {run}' if runs > 1 else ''}: availability during the outage "
                    f"{s['availability_during_outage']}, tweets expected {s['tweets_expected']}, lost "
                    f"{s['tweets_lost']}, duplicated {s['tweets_duplicated']}, repeats refused "
                    f"{s['repeats_refused']}, peak backlog {peak}"
                )
                for promise, entry in outcome["verdict"]["promises"].items():
                    console.print(f"  {promise}: {verdicts.describe(entry, stage.name, promise)}")
            outcome["runs"] = verdicts_of_runs  # every run's verdict; the rest is the last run's
            results["stages"][stage.name] = outcome
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbook drill", description=__doc__.split("\n")[0])
    parser.add_argument("--stages", help="comma-separated stages (default: all), e.g. 01-naive,04-rq")
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, choices=sorted(SCENARIOS))
    parser.add_argument("--quick", action="store_true", help=f"the same story {1 / QUICK_SCALE:.0f} times faster")
    parser.add_argument("--out", type=Path, default=Path("drill-results"),
                        help="folder for results.json and plots")
    parser.add_argument(
        "--publish", action="store_true",
        help="also write the page and plots into docs/results: the site's committed run (a full run of every "
        "stage, the default scenario; for the maintainers)",
    )
    parser.add_argument(
        "--twitter-duplicates",
        choices=("refuse", "accept"),
        default="refuse",
        help="refuse (default): the fake Twitter refuses a repeated status, as the real one did and as "
        "stages 03-05 count on; accept: it takes every repeat, to see raw at-least-once delivery",
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="run the scenario this many times per stage, and say how many held"
    )
    parser.add_argument(
        "--live", action="store_true",
        help="also show the drill in a browser as it happens: serves a page on 127.0.0.1 and prints its URL",
    )
    parser.add_argument("--live-port", type=int, default=0, help="the live page's port (default: any free one)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.publish and (args.quick or args.stages or args.scenario != DEFAULT_SCENARIO):
        parser.error("--publish writes the site's committed run: a full run of every stage in the default "
                     f"scenario ({DEFAULT_SCENARIO}), without --quick, --stages or --scenario")
    stages = [Stage.find(name) for name in args.stages.split(",")] if args.stages else all_stages()
    scale = QUICK_SCALE if args.quick else 1.0
    console = Console()
    scenario = SCENARIOS[args.scenario]
    console.print(f"drill: {scenario.description}; {len(stages)} stages, time scale {scale}")
    started = time.monotonic()
    refuse_duplicates = args.twitter_duplicates == "refuse"
    live_feed = None
    if args.live:
        live_feed = LiveFeed(port=args.live_port)
        console.print(f"live view: open {live_feed.url} in a browser (the stages run one after another)")
    try:
        results = run_drill(stages, scenario, scale, args.quick, console, refuse_duplicates, args.runs, live_feed)
    except BaseException:
        if live_feed is not None:
            live_feed.stop()
        raise
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    report.print_summary(results, console)
    report.write_results_page(results, args.out, args.out / "drill.md")
    if args.publish:  # the site's results page shows the latest full run
        docs = Path(__file__).resolve().parents[2] / "docs" / "results"
        report.write_results_page(results, docs / "drill", docs / "drill.md")
        (docs / "drill" / "results.json").write_text(json.dumps(results, indent=1))
        drill_headline.write_headline(results)  # the home page's figures, from the same run
    console.print(f"wrote {args.out / 'results.json'} in {time.monotonic() - started:.0f} s")
    if live_feed is not None:
        live_feed.end(str(args.out))
    broken = verdicts.print_verdicts(results, console)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
