"""`workbook hosts`: stages 04 and 05 on machines of their own, a fault, and a verdict with ids.

    workbook hosts --scenario failover --quick

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

from lab.hosts import world

DEFAULT_STAGES = "04-rq,05-outbox"


def parser() -> argparse.ArgumentParser:
    from lab.hosts.scenarios import SCENARIOS

    found = argparse.ArgumentParser(prog="workbook hosts", description=__doc__.split("\n")[0])
    found.add_argument("--scenario", choices=sorted(SCENARIOS), default="failover")
    found.add_argument("--stages", default=DEFAULT_STAGES, help=f"comma-separated (default {DEFAULT_STAGES})")
    found.add_argument("--quick", action="store_true", help="shorter phases: the same faults, less load")
    found.add_argument("--out", type=Path, help="also write each stage's result, as JSON, into this file")
    found.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    return found


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.inside and not world.inside():
        print("workbook hosts: --inside is for the command's own run inside its world", file=sys.stderr)
        return 2
    if not args.inside:
        reason = world.why_not()
        if reason:
            print(f"workbook hosts: {reason}", file=sys.stderr)
            return 2
        inner = [sys.executable, "-m", "lab.hosts.cli", "--inside", *(argv if argv is not None else sys.argv[1:])]
        return world.run_in_world(inner)
    return run_inside(args)


def run_inside(args) -> int:
    from lab.hosts.network import Network
    from lab.hosts.scenarios import SCENARIOS, run, verdict_lines
    from lab.hosts.site import HOSTS, HostedSite
    from lab.runtime.stages import Stage

    def stop(signum, frame):
        raise KeyboardInterrupt  # the world's first process passes SIGTERM on: stop in order

    signal.signal(signal.SIGTERM, stop)
    scenario = SCENARIOS[args.scenario]
    results = []
    for name in args.stages.split(","):
        stage = Stage.find(name)
        with tempfile.TemporaryDirectory(prefix="workbook-hosts-") as folder, Network(HOSTS) as net:
            site = HostedSite(stage, net, Path(folder))
            try:
                site.start()
                result = run(site, scenario, args.quick)
            finally:
                site.stop()
        print("\n".join(verdict_lines(result)), flush=True)
        results.append(result)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
