"""`workbook hosts`: stages 04 and 05 on machines of their own, a fault, and a verdict with ids.

    workbook hosts --scenario failover --quick
    workbook hosts --scenario partition --with min-replicas
    workbook hosts --scenario all --quick          every scenario, as CI runs them
    workbook hosts --loopback --scenario failover  every host on 127.0.0.1 (macOS)

The command checks that this machine can make the lab's world, then runs itself again inside it
(`--inside`), where it builds the hosts, runs each stage in turn, and prints a verdict per stage.
Every process it started stops with it, Ctrl-C and SIGKILL included.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path

from lab.hosts import loopback, world

DEFAULT_STAGES = "04-rq,05-outbox"


def scenario_names() -> list[str]:
    from lab.hosts import scale_out
    from lab.hosts.scenarios import SCENARIOS

    return [*SCENARIOS, scale_out.NAME]


def parser() -> argparse.ArgumentParser:
    from lab.hosts.verdicts import DEFAULT_DEFENCES, DEFENCES

    found = argparse.ArgumentParser(
        prog="workbook hosts", description=__doc__.split("\n")[0],
        epilog="defences: " + "; ".join(f"{name} ({'on' if name in DEFAULT_DEFENCES else 'off'} unless told): "
                                        f"{what}" for name, what in DEFENCES.items()),
    )
    found.add_argument("--scenario", choices=[*scenario_names(), "all"], default="failover")
    found.add_argument("--stages", default=DEFAULT_STAGES, help=f"comma-separated (default {DEFAULT_STAGES})")
    found.add_argument("--quick", action="store_true", help="shorter phases: the same faults, less load")
    found.add_argument("--with", dest="switch_on", action="append", default=[], choices=sorted(DEFENCES),
                       metavar="DEFENCE", help="switch a defence on (repeat it for more)")
    found.add_argument("--without", dest="switch_off", action="append", default=[], choices=sorted(DEFENCES),
                       metavar="DEFENCE", help="switch a defence off (repeat it for more)")
    found.add_argument("--runs", type=int, default=1, help="run each scenario on each stage this many times")
    found.add_argument("--twitter-duplicates", choices=("refuse", "accept"), default="refuse",
                       help="refuse (default): the fake Twitter refuses a repeated tweet, as the real one did "
                            "and the stages count on; accept: it takes every repeat, to see raw at-least-once "
                            "delivery")
    found.add_argument("--loopback", action="store_true",
                       help="every host on 127.0.0.1, for machines with no network namespaces (macOS): "
                            "only the scenarios whose faults are made to processes ("
                            + ", ".join(loopback.SCENARIOS) + ")")
    found.add_argument("--out", type=Path, help="also write each stage's result, as JSON, into this file")
    found.add_argument("--publish", action="store_true",
                       help="maintainers: run the site's committed set (every scenario, and each again with the "
                            "defence that changes it) and rewrite docs/results/hosts.*")
    found.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    return found


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.publish and (args.switch_on or args.switch_off or args.stages != DEFAULT_STAGES
                         or args.twitter_duplicates != "refuse" or args.runs != 1):
        print("workbook hosts: --publish runs the committed set as it is: no --with, --without, --stages, "
              "--runs or --twitter-duplicates", file=sys.stderr)
        return 2
    if args.inside and not world.inside():
        print("workbook hosts: --inside is for the command's own run inside its world", file=sys.stderr)
        return 2
    if args.loopback:
        return run_on_loopback(args)
    if not args.inside:
        reason = world.why_not()
        if reason:
            print(f"workbook hosts: {reason}", file=sys.stderr)
            print("Here it can run the scenarios whose faults are made to processes, with every host on "
                  "127.0.0.1: workbook hosts --loopback --scenario failover (or "
                  f"{', '.join(loopback.SCENARIOS[1:])})", file=sys.stderr)
            return 2
        inner = [sys.executable, "-m", "lab.hosts.cli", "--inside", *(argv if argv is not None else sys.argv[1:])]
        return world.run_in_world(inner)
    return run_inside(args)


def run_on_loopback(args) -> int:
    """Every host on 127.0.0.1, in this process: the scenarios that need no network of hosts."""
    if args.publish:
        print("workbook hosts: the committed set runs on a network of hosts, not --loopback", file=sys.stderr)
        return 2
    if args.scenario != "all" and args.scenario not in loopback.SCENARIOS:
        print(f"workbook hosts: {args.scenario} cuts a host off the network, which needs Linux network "
              f"namespaces; --loopback runs {', '.join(loopback.SCENARIOS)}", file=sys.stderr)
        return 2
    left_out = [name for name in scenario_names() if name not in loopback.SCENARIOS]
    print(f"every host on 127.0.0.1 (--loopback): partitions need a network of hosts, so "
          f"{' and '.join(left_out)} {'are' if len(left_out) > 1 else 'is'} left out", flush=True)
    return run_inside(args)


def run_one(name: str, stage_name: str, defences: set[str], args) -> dict:
    """One scenario on one stage, on hosts built for it and gone after it; its result."""
    from lab.hosts import scale_out
    from lab.hosts.network import Network
    from lab.hosts.scenarios import SCENARIOS, run
    from lab.hosts.site import HostedSite, site_hosts
    from lab.runtime.stages import Stage

    scenario = SCENARIOS.get(name)
    latency = scenario.twitter_latency_ms if scenario else scale_out.TWITTER_LATENCY_MS
    rounds = scale_out.ROUNDS if args.quick else scale_out.FULL_ROUNDS
    hosts = site_hosts(max(rounds) if name == scale_out.NAME else 2)
    network = loopback.LoopbackNetwork if args.loopback else Network
    with tempfile.TemporaryDirectory(prefix="workbook-hosts-") as folder, network(hosts) as net:
        site = HostedSite(Stage.find(stage_name), net, Path(folder), twitter_latency_ms=latency,
                          appendfsync="everysec" if "aof" in defences else "off",
                          restart="supervisor" in defences, min_replicas="min-replicas" in defences,
                          client_retry="client-retry" in defences, noeviction="noeviction" in defences,
                          idempotent_record="idempotent-record" in defences,
                          twitter_refuses_repeats=args.twitter_duplicates == "refuse",
                          settings=scenario.settings if scenario else {})
        try:
            site.start(job_workers=scenario is not None)
            result = scale_out.run(site, args.quick) if scenario is None else run(site, scenario, args.quick)
        finally:
            site.stop()
    result["defences"] = ", ".join(sorted(defences))
    result["twitter_duplicates"] = args.twitter_duplicates
    result["loopback"] = args.loopback  # every host on 127.0.0.1
    return result


def run_inside(args) -> int:
    from lab.hosts import report
    from lab.hosts.verdicts import DEFAULT_DEFENCES, broken_promises

    def stop(signum, frame):
        raise KeyboardInterrupt  # the world's first process passes SIGTERM on: stop in order

    signal.signal(signal.SIGTERM, stop)
    if args.publish:
        plan = [(name, (DEFAULT_DEFENCES | set(on)) - set(off)) for name, on, off in report.PUBLISHED]
    else:
        defences = (DEFAULT_DEFENCES | set(args.switch_on)) - set(args.switch_off)
        names = scenario_names() if args.scenario == "all" else [args.scenario]
        plan = [(name, defences) for name in names if not args.loopback or name in loopback.SCENARIOS]
    results = []
    for name, defences in plan:
        for stage_name in args.stages.split(","):
            for _ in range(args.runs):
                result = run_one(name, stage_name, defences, args)
                print("\n".join(report.verdicts(result)), flush=True)
                results.append(result)
                if args.out:  # after each run: a long series interrupted keeps what it measured
                    args.out.write_text(json.dumps(results, indent=1) + "\n")
    if args.publish:
        for path in report.publish(results):
            print(f"wrote {path.relative_to(report.REPO_ROOT)}")
    broken = [f"{r['scenario']} on {r['stage']}: {', '.join(broken_promises(r))}"
              for r in results if broken_promises(r)]
    if broken:
        print("promises broken:\n  " + "\n  ".join(broken), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
