"""`workbook up STAGE`: run a stage's Procfile on 127.0.0.1, print its URLs, stop it all on Ctrl-C."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from lab.runtime.process import LOCALHOST, ManagedProcess, ProcessError
from lab.runtime.stages import RELEASE, Stage

# Which environment variable holds the port each kind of process answers on.
PORT_VARIABLES = {
    "web": "WEB_PORT",
    "twitter": "TWITTER_CONTROL_PORT",
    "kestrel": "KESTREL_PORT",
    "redis": "REDIS_PORT",
}
# Servers first, then the workers that use them, then the site: each starts once what it talks to answers.
START_ORDER = {"worker": 1, "scheduler": 1, "relay": 1, "web": 2}  # every other process (a server) is 0
# A Procfile line that runs one job worker is started this many times, as `honcho start -c worker=4`
# would; a line that reads the variable itself (`--workers ${WORKER_COUNT}`) starts its own.
SCALED = {"worker": "WORKER_COUNT"}
DEFAULT_SCALE = 2
# What a process manager (systemd's Restart=always, supervisord) starts again when it exits: RQ's
# job workers quit when Redis goes away.
RESTARTED = {"worker", "scheduler", "relay"}


def stage_environment(
    *,
    data_dir: Path,
    workers: int,
    web_port: int,
    twitter_port: int,
    twitter_control_port: int,
    kestrel_port: int = 22133,
    redis_port: int = 6380,
) -> dict[str, str]:
    """What a stage's Procfile lines read: the same variables for `workbook up` and the tests."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "WEB_PORT": str(web_port),
        "WEB_WORKERS": str(workers),
        "TWITTER_PORT": str(twitter_port),
        "TWITTER_CONTROL_PORT": str(twitter_control_port),
        "TWITTER_API_URL": f"http://{LOCALHOST}:{twitter_port}",
        "TWITPIC_DATA_DIR": str(data_dir),
        "KESTREL_PORT": str(kestrel_port),
        "REDIS_PORT": str(redis_port),
        "REDIS_URL": f"redis://{LOCALHOST}:{redis_port}/0",
    }


# Every port a Procfile line binds: (its variable, the `workbook up` option that changes it, what it serves).
BOUND_PORTS = {
    "web": [("WEB_PORT", "--web-port", "the site")],
    "twitter": [("TWITTER_PORT", "--twitter-port", "the fake Twitter's API"),
                ("TWITTER_CONTROL_PORT", "--twitter-control-port", "the fake Twitter's page")],
    "kestrel": [("KESTREL_PORT", "--kestrel-port", "the queue server")],
    "redis": [("REDIS_PORT", "--redis-port", "Redis")],
}


def taken_ports(stage: Stage, env: dict[str, str], skip: frozenset[str] = frozenset()) -> list[str]:
    """What is wrong with the ports the stage would bind: one sentence per port already taken."""
    from lab.runtime.doctor import port_free, who_listens

    problems = []
    for name in stage.processes():
        for variable, option, serves in BOUND_PORTS.get(name, []) if name not in skip else []:
            port = int(env[variable])
            if not port_free(port):
                problems.append(f"port {port} ({serves}) is taken by {who_listens(port)}: stop it, or choose "
                                f"another with {option}")
    return problems


def own_redis_url() -> str | None:
    """A Redis the user runs themselves (REDIS_URL): `workbook up` uses it instead of starting one."""
    return os.environ.get("REDIS_URL") or None


def instances(stage: Stage, env: dict[str, str]) -> list[tuple[str, str]]:
    """(Procfile line, process name) for each process to start: `worker.1`, `worker.2`... for a
    line that runs one job worker, the line's own name for every other."""
    found = []
    for name, command in stage.processes().items():
        variable = SCALED.get(name)
        if variable is None or variable in command:
            found.append((name, name))
        else:
            found += [(name, f"{name}.{n}") for n in range(1, int(env.get(variable, DEFAULT_SCALE)) + 1)]
    return found


def procfile_name(process: ManagedProcess) -> str:
    """The Procfile line a process runs: `worker` for `04-rq:worker.2`."""
    return process.name.split(":", 1)[-1].split(".", 1)[0]


def start_one(stage: Stage, env: dict[str, str], name: str, instance: str, log_dir: Path | None) -> ManagedProcess:
    port = int(env[PORT_VARIABLES[name]]) if name in PORT_VARIABLES else None
    log_path = log_dir / f"{instance}.log" if log_dir else None
    process = stage.process(name, env=env, port=port, log_path=log_path, instance=instance)
    return process.start(timeout=30)


def start_stage(
    stage: Stage,
    env: dict[str, str],
    log_dir: Path | None = None,
    skip: frozenset[str] = frozenset(),
) -> list[ManagedProcess]:
    """Start the Procfile's processes (but `skip`) in START_ORDER; all or nothing. The `release`
    command (the database's tables) runs to its end first, unless only servers are started."""
    names = sorted(
        ((name, instance) for name, instance in instances(stage, env) if name not in skip),
        key=lambda pair: START_ORDER.get(pair[0], 0),
    )
    started: list[ManagedProcess] = []
    try:
        if any(name in START_ORDER for name, _ in names):
            stage.release(env=env, log_path=log_dir / f"{RELEASE}.log" if log_dir else None)
        for name, instance in names:
            started.append(start_one(stage, env, name, instance, log_dir))
    except BaseException:
        stop_all(started)
        raise
    return started


def restart_exited(
    stage: Stage, env: dict[str, str], processes: dict[str, ManagedProcess], log_dir: Path | None = None,
) -> list[str]:
    """Start again each process of RESTARTED that has exited, in `processes` (by process name), as a
    process manager would; what was restarted, and how it had ended."""
    restarted = []
    for instance, process in list(processes.items()):
        name = procfile_name(process)
        if name in RESTARTED and not process.alive:
            code = process.returncode
            process.stop()
            processes[instance] = start_one(stage, env, name, instance, log_dir)
            restarted.append(f"{instance} exited with code {code}: started it again")
    return restarted


def stop_all(processes: list[ManagedProcess]) -> None:
    """Stop the processes in the reverse of START_ORDER: the site, then the workers, then the
    servers they use (a job worker says goodbye to Redis as it stops). Those of one rank are asked
    at once (SIGTERM), then waited for."""
    ranks = sorted({START_ORDER.get(procfile_name(p), 0) for p in processes}, reverse=True)
    for rank in ranks:
        these = [p for p in reversed(processes) if START_ORDER.get(procfile_name(p), 0) == rank]
        for process in these:
            process.ask_to_stop()
        for process in these:
            process.stop()


def run_up(stage_name: str, *, data_dir: Path | None = None, **settings) -> int:
    """Start a stage's processes in the foreground until Ctrl-C. `settings` are
    stage_environment's (workers, ports); what is printed is read back from the environment."""
    stage = Stage.find(stage_name)
    data_dir = (data_dir or stage.path / "data").resolve()
    env = stage_environment(data_dir=data_dir, **settings)
    web_port, twitter_port, kestrel_port = env["WEB_PORT"], env["TWITTER_PORT"], env["KESTREL_PORT"]
    skip = frozenset()
    if own_redis_url():
        env["REDIS_URL"] = own_redis_url()
        skip = frozenset({"redis"})
    problems = taken_ports(stage, env, skip)
    if problems:
        print("\n".join(f"workbook up: {problem}" for problem in problems), flush=True)
        return 1
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"starting {stage.name}: {', '.join(stage.procfile())} (logs in {log_dir})", flush=True)
    try:
        processes = start_stage(stage, env, log_dir, skip=skip)
    except ProcessError as error:
        print(f"workbook up: {error}", flush=True)
        return 1
    print(f"  site:          http://{LOCALHOST}:{web_port}/  ({env['WEB_WORKERS']} gunicorn workers)")
    print(f"  fake Twitter:  http://{LOCALHOST}:{env['TWITTER_CONTROL_PORT']}/  (timeline and outage modes)")
    print(f"  Twitter API:   http://{LOCALHOST}:{twitter_port}/2/tweets")
    if "redis" in stage.processes():
        print(f"  Redis:         {env['REDIS_URL']}  (try: rq info --url {env['REDIS_URL']})")
        print(f"  queue status:  http://{LOCALHOST}:{web_port}/status")
    if "kestrel" in stage.processes():
        print(
            f"  queue server:  {LOCALHOST}:{kestrel_port}  "
            f"(try: workbook queue-stats --port {kestrel_port})"
        )
    print("Ctrl-C stops everything.", flush=True)
    by_name = {process.name.split(":", 1)[1]: process for process in processes}
    try:
        while True:
            time.sleep(0.2)
            for restarted in restart_exited(stage, env, by_name, log_dir):
                print(restarted, flush=True)
            processes = list(by_name.values())
            if not all(process.alive for process in processes):
                break
        dead = [process for process in processes if not process.alive]
        for process in dead:
            print(f"{process.name} exited with code {process.returncode}:\n{process.log_tail()}", flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nstopping... (a few seconds; a second Ctrl-C changes nothing)", flush=True)
        return 0
    finally:
        # Interrupted half-way, the stop would leave processes running: Ctrl-C waits until it is done.
        # (`workbook up` runs in the main thread, the one where Python handles signals.)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stop_all(list(by_name.values()))
        finally:
            signal.signal(signal.SIGINT, previous)
