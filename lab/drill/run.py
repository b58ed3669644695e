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
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
from rich.console import Console
from rich.live import Live

from lab import drill_headline
from lab.drill import report, verdicts
from lab.drill.load import CLIENT_TIMEOUT, Load, rates
from lab.drill.probes import backlog_probe
from lab.drill.scenarios import SCENARIOS, Scenario
from lab.process import ManagedProcess, free_port
from lab.site_client import SiteClient
from lab.stages import Stage, all_stages
from lab.twitter import FakeTwitter
from lab.up import start_stage, stage_environment

WEB_WORKERS = 4  # the same fixed pool for every stage, like PHP-FPM's
BACKGROUND_WORKERS = 4  # enough to keep up with the load at Twitter's normal latency
QUICK_SCALE = 0.2  # --quick: the same story five times faster
AVAILABLE_WITHIN = 1.0  # a page view counts as available if it answered OK within this many seconds
SAMPLE_EVERY = 0.25  # seconds between backlog samples
# Seconds to wait at most for the backlog to drain after the load stops. Not scaled with the story:
# how fast workers drain is set by the machine (a fork per RQ job, a loaded CPU), not by the story.
DRAIN_BOUND = 120.0
QUIET_FOR = 3.0  # seconds with an empty backlog and no new tweet that count as drained
REQUEST_MARGIN = 1.0  # seconds: a request begun this long before the queue died may still enqueue after
REDIS_FORGETS_REASON = (
    "queued in a Redis that keeps nothing on disk (the stage's default; REDIS_PERSISTENCE=--appendonly keeps it)"
)
QUEUE_DOWN_REASON = (
    "made while the queue server was down: the comment is saved, its tweet cannot be queued "
    "(the two writes of chapter 05)"
)


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def kill_a_worker(stage: Stage, processes: dict[str, ManagedProcess]) -> str:
    """SIGKILL one background worker (stage 01 has none: one of its web workers)."""
    owner = processes.get("worker") or processes["web"]
    children = psutil.Process(owner.pid).children()
    if not children:
        return "no worker to kill"
    children[0].send_signal(signal.SIGKILL)
    return f"killed {owner.name.split(':')[1]} process {children[0].pid}"


def restart_the_queue(stage: Stage, processes: dict[str, ManagedProcess], env: dict) -> str:
    for name in ("kestrel", "redis"):
        if name in processes:
            processes[name].kill()
            processes[name].remove_log()
            others = frozenset(stage.processes()) - {name}
            [processes[name]] = start_stage(stage, env, skip=others)
            return f"killed and restarted {name}"
    return "no queue server to restart"


def run_stage(
    stage: Stage, scenario: Scenario, scale: float, live: Live, console: Console, refuse_duplicates: bool = True
) -> dict:
    twitter = FakeTwitter.start(latency_ms=(1000, 2000), time_scale=scale, reject_duplicates=refuse_duplicates)
    data = tempfile.TemporaryDirectory(prefix="workbook-drill-")
    processes: dict[str, ManagedProcess] = {}
    try:
        env = stage_environment(
            data_dir=Path(data.name) / "data",
            workers=WEB_WORKERS,
            web_port=free_port(),
            twitter_port=twitter.port,
            twitter_control_port=twitter.control_port,
            kestrel_port=free_port(),
            redis_port=free_port(),
        )
        env.update(
            WORKER_COUNT=str(BACKGROUND_WORKERS),
            WORKBOOK_TIME_SCALE=repr(scale),
            WEB_TIMEOUT=str(max(1, round(20 * scale))),  # gunicorn kills a worker stuck this long
        )
        live.update(f"[bold]{stage.name}[/]: starting {', '.join(stage.processes())}")
        for process in start_stage(stage, env, skip=frozenset({"twitter"})):
            processes[process.name.split(":")[1]] = process
        site = SiteClient(f"http://127.0.0.1:{env['WEB_PORT']}")
        photo = site.new_photo()
        probe = backlog_probe(set(processes), env, twitter)
        load = Load(site, photo, label=f"{stage.name} {os.getpid()} {time.time():.0f}", rates=rates(scale))
        backlog: list[list[float]] = []
        summary_extra: dict = {}
        queue_down: list = [None, None]  # load seconds: the queue server killed, and back
        phases = []
        events = []

        def sample(phase: str) -> None:
            try:
                backlog.append([round(load.now(), 3), probe()])
            except Exception:  # a queue server being restarted does not answer: no sample
                pass
            requests = load.snapshot()
            live.update(
                f"[bold]{stage.name}[/] {scenario.name}: [cyan]{phase}[/] t={load.now():5.1f} s  "
                f"requests {len(requests)}  answered {sum(r.outcome == 'ok' for r in requests)}  "
                f"backlog {backlog[-1][1] if backlog else '?'}  tweets {twitter.stats()['accepted']}"
            )

        load.start()
        for phase in scenario.phases:
            started = load.now()
            twitter.control(**phase.twitter)
            action = phase.action
            while load.now() < started + phase.seconds * scale:
                if action and load.now() >= started + phase.action_at * scale:
                    if action == "kill-worker":
                        events.append([round(load.now(), 3), kill_a_worker(stage, processes)])
                    elif action == "restart-queue":
                        backlog_before = backlog[-1][1] if backlog else None
                        queue_down = [load.now() - REQUEST_MARGIN, None]
                        events.append([round(load.now(), 3), restart_the_queue(stage, processes, env)])
                        queue_down[1] = load.now()
                        summary_extra["backlog_at_restart"] = backlog_before
                    action = None
                sample(phase.name)
                time.sleep(SAMPLE_EVERY)
            phases.append({"name": phase.name, "start": round(started, 3), "end": round(load.now(), 3)})
        twitter.control(mode="up")
        live.update(f"[bold]{stage.name}[/]: waiting for the last requests")
        load.stop()

        # Drain: until every tweet asked for is posted, or the backlog stays empty and no new tweet
        # arrives for a while, or the bound runs out.
        asked = [r.tweet for r in load.snapshot() if r.tweet]
        deadline = time.monotonic() + DRAIN_BOUND
        last_change, last_count = time.monotonic(), -1
        all_posted_at = None
        while time.monotonic() < deadline:
            sample("drain")
            count = twitter.stats()["accepted"]
            if count != last_count:
                last_change, last_count = time.monotonic(), count
            posted = twitter.tweets_starting_with(asked)
            if all(posted.values()):
                all_posted_at = load.now()
                break
            if backlog and backlog[-1][1] == 0 and time.monotonic() - last_change > QUIET_FOR:
                break
            time.sleep(SAMPLE_EVERY)
        # Settle before counting: a second delivery can land a moment after the first. Settled:
        # nothing in flight at Twitter, and the backlog empty or no call received for a while
        # (stage 02 retries repeats that Twitter refused, with growing delays).
        received, quiet_since = twitter.stats()["received"], time.monotonic()
        while time.monotonic() < deadline:
            stats = twitter.stats()
            if stats["received"] != received:
                received, quiet_since = stats["received"], time.monotonic()
            quiet = time.monotonic() - quiet_since >= QUIET_FOR
            if stats["in_flight"] == 0 and ((backlog and backlog[-1][1] == 0) or quiet):
                break
            sample("drain")
            time.sleep(SAMPLE_EVERY)
        posted = twitter.tweets_starting_with(asked)
        outcome = summarize(stage, load, posted, phases, backlog, events, all_posted_at)
        summary = outcome["summary"]
        summary["repeats_refused"] = twitter.stats()["rejected"].get("duplicate", 0)
        summary["duplicate_posts"] = summary["tweets_duplicated"] + summary["repeats_refused"]
        summary.update(summary_extra)
        # A comment made while the queue server was down is saved, but its tweet cannot be queued:
        # the two writes of chapter 05, a limit every stage with a queue server has.
        # And a Redis that keeps nothing on disk (stage 04's default) loses every job queued in it.
        forgets = "redis" in processes and not env.get("REDIS_PERSISTENCE")
        down_from, back_at = queue_down
        excused = {
            r.tweet: (REDIS_FORGETS_REASON if forgets and r.start < down_from else QUEUE_DOWN_REASON)
            for r in load.snapshot()
            if r.tweet and back_at is not None and (forgets or down_from <= r.start) and r.start <= back_at
        }
        outcome["verdict"] = verdicts.verdict(stage, summary, posted, excused)
        return outcome
    finally:
        for process in reversed(list(processes.values())):
            process.stop()
            process.remove_log()
        twitter.stop()
        data.cleanup()


def summarize(stage, load, posted: dict[str, list], phases, backlog, events, all_posted_at=None) -> dict:
    requests = load.snapshot()
    outage = next(p for p in phases if p["name"] == "outage")
    summary: dict = {}

    def in_phase(request, phase) -> bool:
        return phase["start"] <= request.start < phase["end"]

    for phase in phases:
        answered = [r.latency * 1000 for r in requests if r.kind == "comment" and r.outcome == "ok" and in_phase(r, phase)]
        summary[f"comment_p50_ms_{phase['name']}"] = _round(percentile(answered, 0.5))
        summary[f"comment_p99_ms_{phase['name']}"] = _round(percentile(answered, 0.99))
    normal = phases[0]
    uploads = [r.latency * 1000 for r in requests if r.kind == "upload" and r.outcome == "ok" and in_phase(r, normal)]
    summary["upload_p50_ms_normal"] = _round(percentile(uploads, 0.5))
    views = [r for r in requests if r.kind == "view" and in_phase(r, outage)]
    available = [r for r in views if r.outcome == "ok" and r.latency <= AVAILABLE_WITHIN]
    summary["availability_during_outage"] = round(len(available) / len(views), 4) if views else None
    summary["errors"] = sum(r.outcome != "ok" for r in requests)
    summary["tweets_expected"] = len(posted)
    summary["tweets_posted"] = sum(1 for tweets in posted.values() if tweets)
    summary["tweets_lost"] = sum(1 for tweets in posted.values() if not tweets)
    summary["tweets_duplicated"] = sum(len(tweets) - 1 for tweets in posted.values() if len(tweets) > 1)
    summary["peak_backlog"] = max((n for _, n in backlog), default=0)
    # Drained: every tweet asked for is on Twitter; for a stage that lost some, its backlog is empty.
    if all_posted_at is not None:
        summary["drain_seconds"] = round(max(0.0, all_posted_at - outage["end"]), 2)
    else:
        summary["drain_seconds"] = _drain_seconds(backlog, outage["end"])
    return {
        "summary": summary,
        "requests": [r.as_json() for r in requests],
        "backlog": backlog,
        "events": events,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _drain_seconds(backlog: list[list[float]], outage_end: float) -> float | None:
    """From the end of the outage to the moment the backlog emptied for good."""
    emptied = None
    for moment, count in backlog:
        if moment < outage_end:
            continue
        if count == 0 and emptied is None:
            emptied = moment
        elif count != 0:
            emptied = None
    return None if emptied is None else round(max(0.0, emptied - outage_end), 2)


def run_drill(
    stages: list[Stage],
    scenario: Scenario,
    scale: float,
    quick: bool,
    console: Console,
    refuse_duplicates: bool = True,
    runs: int = 1,
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
        "rates_per_second": rates(scale),
        "background_workers": BACKGROUND_WORKERS,
        "twitter_refuses_duplicates": refuse_duplicates,
        "runs": runs,
        "phases": [],
        "stages": {},
    }
    with Live(console=console, refresh_per_second=4, transient=True) as live:
        for stage in stages:
            verdicts_of_runs = []
            for run in range(1, runs + 1):
                outcome = run_stage(stage, scenario, scale, live, console, refuse_duplicates)
                verdicts_of_runs.append(outcome["verdict"])
                s = outcome["summary"]
                console.print(
                    f"{stage.name}{f' run {run}' if runs > 1 else ''}: availability during the outage "
                    f"{s['availability_during_outage']}, tweets expected {s['tweets_expected']}, lost "
                    f"{s['tweets_lost']}, duplicated {s['tweets_duplicated']}, repeats refused "
                    f"{s['repeats_refused']}, peak backlog {s['peak_backlog']}"
                )
                for promise, entry in outcome["verdict"]["promises"].items():
                    console.print(f"  {promise}: {verdicts.describe(entry)}")
            outcome["runs"] = verdicts_of_runs  # every run's verdict; the rest is the last run's
            results["stages"][stage.name] = outcome
    phases, at = [], 0.0
    for phase in scenario.phases:  # the planned phases, for the plots
        phases.append({"name": phase.name, "start": round(at, 3), "end": round(at + phase.seconds * scale, 3)})
        at += phase.seconds * scale
    results["phases"] = phases
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbook drill", description=__doc__.split("\n")[0])
    parser.add_argument("--stages", help="comma-separated stages (default: all), e.g. 01-naive,04-rq")
    parser.add_argument("--scenario", default="hang", choices=sorted(SCENARIOS))
    parser.add_argument("--quick", action="store_true", help=f"the same story {1 / QUICK_SCALE:.0f} times faster")
    parser.add_argument("--out", type=Path, default=Path("drill-results"), help="folder for results.json and plots")
    parser.add_argument("--publish", action="store_true", help="also write the page and plots into docs/results")
    parser.add_argument(
        "--twitter-duplicates",
        choices=("refuse", "accept"),
        default="refuse",
        help="refuse (default): the fake Twitter refuses a repeated status, as the real one did and as "
        "stages 03-04 count on; accept: it takes every repeat, to see raw at-least-once delivery",
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="run the scenario this many times per stage, and say how many held"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    stages = [Stage.find(name) for name in args.stages.split(",")] if args.stages else all_stages()
    scale = QUICK_SCALE if args.quick else 1.0
    console = Console()
    scenario = SCENARIOS[args.scenario]
    console.print(f"drill: {scenario.description}; {len(stages)} stages, time scale {scale}")
    started = time.monotonic()
    refuse_duplicates = args.twitter_duplicates == "refuse"
    results = run_drill(stages, scenario, scale, args.quick, console, refuse_duplicates, args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    report.print_summary(results, console)
    report.write_results_page(results, args.out, args.out / "drill.md")
    if args.publish:  # the site's results page shows the latest real run
        docs = Path(__file__).resolve().parents[2] / "docs" / "results"
        report.write_results_page(results, docs / "drill", docs / "drill.md")
        (docs / "drill" / "results.json").write_text(json.dumps(results, indent=1))
        drill_headline.write_headline(results)  # the home page's figures, from the same run
    console.print(f"wrote {args.out / 'results.json'} in {time.monotonic() - started:.0f} s")
    broken = verdicts.print_verdicts(results, console)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
