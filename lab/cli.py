"""`workbook`: the lab's command line.

    workbook twitter --port 8081 --latency-ms 1000-2000 --mode up   run the fake Twitter API
    workbook twitter-mode hang                                      switch a running one's mode
    workbook up 01-naive --web-workers 2                            run a stage until Ctrl-C
    workbook kestrel --port 22133 --data-dir DIR                    run the Kestrel-protocol server
    workbook queue-stats --queue tweets                             a queue's length, open reads...
    workbook bench kestrel --quick                                  our queue server against Redis

`--time-scale X` (or WORKBOOK_TIME_SCALE) before the command scales every delay, for this process
and every process it starts.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from lab.runtime.timescale import ENV_VAR as TIME_SCALE_ENV
from lab.runtime.timescale import TimeScaleError, parse_time_scale, set_time_scale

# Commands whose module parses its own options: name -> (the module whose main(argv) runs it, help).
FORWARDED = {
    "doctor": ("lab.runtime.doctor", "what this machine has for the workbook, and the fix for each miss"),
    "exercise": ("lab.exercises.cli", "exercises: list, start, check, hint, verify, docs"),
    "drill": ("lab.drill.run", "the outage drill: every stage under the same failure, measured"),
    "hosts": ("lab.hosts.cli", "stages 04 and 05 on several machines (Linux namespaces): a fault, a verdict"),
    "kestrel": ("lab.kestrel.cli", "run the Kestrel-protocol queue server"),
    "matrix": ("lab.sitegen.matrix", "write or check the invariants matrix page from a test run's report"),
    "generate-docs": ("lab.sitegen.generate", "rewrite every generated docs page (CLI reference, figures, diffs)"),
    "fresh-machine": ("lab.fresh_machine", "the README's commands in a fresh Debian root, offline (root only)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbook",
        description="The Twitpic workbook's lab bench.",
    )
    parser.add_argument(
        "--time-scale",
        type=_time_scale,
        metavar="X",
        help=f"multiply every delay by X (default 1, or ${TIME_SCALE_ENV}); 0.01 runs the story 100x faster",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    twitter = commands.add_parser(
        "twitter",
        help="run the fake Twitter API",
        description="Run the fake Twitter API: POST /2/tweets on --port, control routes and the "
        "page on both ports (only --control-port stays open in `refuse` mode).",
    )
    twitter.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    twitter.add_argument("--port", type=int, default=8081, help="the API port (default 8081)")
    twitter.add_argument(
        "--control-port", type=int, default=8082, help="the control port (default 8082)"
    )
    twitter.add_argument(
        "--latency-ms",
        default="1000-2000",
        metavar="LO-HI",
        help="each request takes a random time in this range, in story milliseconds (default 1000-2000)",
    )
    twitter.add_argument("--mode", default="up", help="up, slow, down, refuse, hang or flaky (default up)")
    twitter.add_argument(
        "--fail-rate", default="0.3", help="share of requests that fail in `flaky` mode (default 0.3)"
    )
    twitter.add_argument("--seed", type=int, help="seed the random latency and failures")
    twitter.add_argument(
        "--reject-duplicates",
        action="store_true",
        help="refuse a tweet whose user already posted the same text (403), as Twitter did",
    )
    twitter.add_argument(
        "--user",
        action="append",
        metavar="NAME=TOKEN",
        help="a user and their token (repeat it; replaces the demo users alice, bob, carol, dave)",
    )
    twitter.add_argument("-v", "--verbose", action="store_true", help="log every request")
    twitter.set_defaults(func=run_twitter)

    mode = commands.add_parser(
        "twitter-mode",
        help="show or change a running fake Twitter's mode",
        description="Show or change a running fake Twitter's mode, latency and fail rate.",
    )
    mode.add_argument("mode", nargs="?", help="up, slow, down, refuse, hang or flaky")
    mode.add_argument("--latency-ms", metavar="LO-HI")
    mode.add_argument("--fail-rate")
    mode.add_argument(
        "--url",
        default="http://127.0.0.1:8082",
        help="the fake Twitter's control port (default http://127.0.0.1:8082)",
    )
    mode.set_defaults(func=run_twitter_mode)

    up = commands.add_parser(
        "up",
        help="run a stage: its Procfile's processes on 127.0.0.1, until Ctrl-C",
        description="Run a stage's Procfile processes (the site under gunicorn, the fake Twitter, "
        "and the stage's job workers and queue server) on 127.0.0.1, print the URLs, and stop "
        "everything on Ctrl-C.",
    )
    up.add_argument("stage", help="the stage's folder name or number: 01-naive, 01, 1")
    up.add_argument("--web-workers", "--workers", dest="web_workers", type=int, default=4,
                    help="gunicorn sync web workers, each one request at a time (default 4; "
                         "--workers is the old name)")
    up.add_argument("--web-port", type=int, default=8000, help="the site's port (default 8000)")
    up.add_argument("--twitter-port", type=int, default=8081, help="the Twitter API port (default 8081)")
    up.add_argument(
        "--twitter-control-port", type=int, default=8082, help="the fake Twitter's page (default 8082)"
    )
    up.add_argument(
        "--kestrel-port", type=int, default=22133, help="the queue server's port, in stage 03 (default 22133)"
    )
    up.add_argument("--redis-port", type=int, default=6380, help="Redis's port, in stage 04 (default 6380)")
    up.add_argument(
        "--data-dir", type=Path, help="the stage's data folder (default steps/<stage>/data)"
    )
    up.set_defaults(func=run_up)

    redis = commands.add_parser(
        "redis",
        help="run a private Redis server (the embedded Valkey, else the PATH's redis-server)",
        description="Run the embedded valkey-server (or $WORKBOOK_REDIS_SERVER, or the PATH's redis-server) "
        "on 127.0.0.1 with no snapshots, an append-only file synced to "
        "disk every second (or as --appendfsync says), and no eviction: full, it refuses writes.",
    )
    redis.add_argument("--port", type=int, default=6380, help="default 6380, so as not to meet a system Redis")
    redis.add_argument("--data-dir", type=Path, default=Path("redis-data"), help="where the AOF goes")
    redis.add_argument(
        "--appendfsync", choices=["everysec", "always", "off"], default="everysec",
        help="when the append-only file reaches the disk: every second (default), on every write, "
        "or off: no file, a restart loses everything",
    )
    redis.add_argument("--maxmemory", default="256mb", help="the most memory it uses (default 256mb)")
    redis.set_defaults(func=run_redis)

    stats = commands.add_parser(
        "queue-stats",
        help="print a Kestrel-protocol server's stats (what `echo stats | nc` shows)",
        description="Print a running Kestrel-protocol server's stats, all or one queue's.",
    )
    stats.add_argument("--host", default="127.0.0.1")
    stats.add_argument("--port", type=int, default=22133, help="the server's port (default 22133)")
    stats.add_argument("--queue", help="only this queue's lines, e.g. tweets")
    stats.set_defaults(func=run_queue_stats)

    bench = commands.add_parser(
        "bench",
        help="run a benchmark: kestrel, kestrel-churn, db-queue, rq-recovery, rq-enqueue, outbox",
        description="Run a benchmark that prints ratios measured side by side in one run.",
    )
    bench.add_argument("benchmark", choices=sorted(BENCHMARKS), help="which benchmark")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=run_bench)

    diffs = commands.add_parser(
        "diffs", help="write the diff between consecutive stages into docs/diffs", description="Write "
        "the diff between consecutive stages into docs/diffs, one page per step.",
    )
    diffs.set_defaults(func=run_diffs)

    # Commands that hand their whole command line, options included, to a module's own parser.
    for name, (module, help_text) in FORWARDED.items():
        forwarded = commands.add_parser(name, help=help_text, add_help=False, prefix_chars="\0")
        forwarded.add_argument("args", nargs=argparse.REMAINDER)
        forwarded.set_defaults(func=run_module_main, module=module)
    return parser


def _time_scale(text: str) -> float:
    try:
        return parse_time_scale(text)
    except TimeScaleError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run_twitter(args) -> int:
    from lab.twitter.server import FakeTwitterServer
    from lab.twitter.state import ControlError, TwitterState
    from lab.twitter.users import DEMO_USERS, parse_user

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s twitter %(message)s",
        stream=sys.stderr,
    )
    try:
        users = dict(parse_user(text) for text in args.user) if args.user else dict(DEMO_USERS)
        state = TwitterState(
            users=users,
            mode=args.mode,
            latency_ms=args.latency_ms,
            fail_rate=args.fail_rate,
            seed=args.seed,
            reject_duplicates=args.reject_duplicates,
        )
    except (ControlError, ValueError) as error:
        print(f"workbook twitter: {error}", file=sys.stderr)
        return 2
    try:
        server = FakeTwitterServer(state, args.host, args.port, args.control_port).start()
    except OSError as error:
        print(f"workbook twitter: cannot listen on {args.host}: {error}", file=sys.stderr)
        return 1

    def stop(signum, frame):
        server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"fake Twitter API:  http://{args.host}:{server.port}/2/tweets", flush=True)
    print(f"timeline and modes: http://{args.host}:{server.control_port}/", flush=True)
    print(f"mode {state.mode}, latency {args.latency_ms} ms x time scale, Ctrl-C to stop", flush=True)
    server.wait()
    return 0


def run_twitter_mode(args) -> int:
    import requests

    changes = {}
    if args.mode:
        changes["mode"] = args.mode
    if args.latency_ms:
        changes["latency_ms"] = args.latency_ms.split("-", 1) if "-" in args.latency_ms else [args.latency_ms] * 2
    if args.fail_rate:
        changes["fail_rate"] = args.fail_rate
    url = args.url.rstrip("/") + "/_control"
    try:
        if changes:
            response = requests.post(url, json=changes, timeout=5)
        else:
            response = requests.get(url, timeout=5)
    except requests.RequestException as error:
        print(f"workbook twitter-mode: no fake Twitter at {args.url}: {error}", file=sys.stderr)
        return 1
    body = response.json()
    if not response.ok:
        print(f"workbook twitter-mode: {body.get('detail', body)}", file=sys.stderr)
        return 2
    print(json.dumps(body, indent=2))
    return 0


def run_up(args) -> int:
    from lab.runtime.stages import StageError
    from lab.runtime.up import run_up as up

    if args.web_workers < 1:
        print("workbook up: --web-workers must be at least 1", file=sys.stderr)
        return 2
    try:
        return up(
            args.stage,
            workers=args.web_workers,
            web_port=args.web_port,
            twitter_port=args.twitter_port,
            twitter_control_port=args.twitter_control_port,
            kestrel_port=args.kestrel_port,
            redis_port=args.redis_port,
            data_dir=args.data_dir,
        )
    except StageError as error:
        print(f"workbook up: {error}", file=sys.stderr)
        return 2


def run_redis(args) -> int:
    from lab.runtime.redis_server import run_redis as redis

    return redis(args.port, args.data_dir, args.appendfsync, args.maxmemory)


def run_queue_stats(args) -> int:
    from lab.kestrel.stats import read_stats

    try:
        stats = read_stats(args.host, args.port)
    except OSError as error:
        print(f"workbook queue-stats: no queue server at {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    prefix = f"queue_{args.queue}_" if args.queue else ""
    lines = [f"{name} {value}" for name, value in stats.items() if name.startswith(prefix)]
    if not lines:  # a queue exists once something is set in it, or someone waits on it
        print(f"no queue {args.queue!r} on {args.host}:{args.port} yet: nothing has been set in it")
    for line in lines:
        print(line)
    return 0


def run_diffs(args) -> int:
    from lab.sitegen.diffs import main as diffs

    return diffs([])


# benchmark name -> the module whose main(argv) runs it
BENCHMARKS = {
    "kestrel": "lab.bench.kestrel",
    "kestrel-churn": "lab.bench.kestrel_churn",
    "db-queue": "lab.bench.db_queue",
    "rq-recovery": "lab.bench.rq_recovery",
    "rq-enqueue": "lab.bench.rq_enqueue",
    "outbox": "lab.bench.outbox",
}


def run_bench(args) -> int:
    import importlib

    return importlib.import_module(BENCHMARKS[args.benchmark]).main(args.args)


def run_module_main(args) -> int:
    import importlib

    return importlib.import_module(args.module).main(args.args)


def _exit_on_sigterm(signum, frame):
    # A plain `kill` ends the command the way Ctrl-C does: its finally blocks stop what it started.
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # commands that serve set their own
    # Ctrl-C interrupts every command (and so stops what it started), even one a script started
    # in the background, where the shell makes SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.time_scale is not None:
        set_time_scale(args.time_scale)
    try:
        return args.func(args) or 0
    except TimeScaleError as error:
        print(f"workbook: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
