"""lab.hosts: machines as network namespaces in a private world, and the faults between them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from lab.hosts.world import UNSHARE, why_not, world_argv
from lab.runtime.process import wait_until

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("network_probe.py")

pytestmark = pytest.mark.skipif(why_not() is not None, reason=f"no lab of hosts here: {why_not()}")


def steps(output: str) -> dict[str, dict]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return {line.pop("step"): line for line in lines}


def test_hosts_reach_each_other_until_cut_off_paused_or_healed():
    probe = subprocess.run(world_argv([sys.executable, str(PROBE)]), cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert probe.returncode == 0, probe.stderr
    seen = steps(probe.stdout)
    assert seen["connected"] == {"b_to_a": "hello", "c_to_a": "hello", "observer_sees": True,
                                 "observer": "10.77.0.1"}
    # A partition cuts both ways, and only between its two sides.
    assert seen["partitioned"]["b_to_a"] != "hello" and seen["partitioned"]["a_to_b"] != "hello"
    assert seen["partitioned"]["c_to_a"] == "hello"
    assert seen["healed"] == {"b_to_a": "hello", "a_to_b": "hello"}
    # A paused host accepts the connection (the kernel does) but never answers.
    assert seen["paused"] == {"b_to_a": "TimeoutError"}
    assert seen["resumed"] == {"b_to_a": "hello"}


def namespaces(pids=None, started_before: float | None = None) -> set[str]:
    """The network namespaces the processes `pids` are in (every process's, by default), counting
    only processes started before `started_before`: a namespace made later may reuse a number."""
    found = set()
    for pid in pids if pids is not None else psutil.pids():
        try:
            if started_before is None or psutil.Process(pid).create_time() < started_before:
                found.add(os.readlink(f"/proc/{pid}/ns/net"))
        except (OSError, psutil.Error):
            pass
    return found


def test_a_world_killed_with_sigkill_leaves_no_process_namespace_or_mount(tmp_path):
    mounts = Path("/proc/self/mountinfo").read_text()
    log = tmp_path / "probe.log"
    with open(log, "w") as out:
        world = subprocess.Popen(world_argv([sys.executable, str(PROBE), "--hold"]), cwd=ROOT, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: "holding" in log.read_text(), timeout=90, what="the world holds its hosts")
        inside = [psutil.Process(world.pid), *psutil.Process(world.pid).children(recursive=True)]
        assert len(inside) > 6  # unshare, init, the probe, three holders, three echo servers
        made = namespaces([process.pid for process in inside]) - namespaces([os.getpid()])
        assert len(made) == 4  # the world's own, and one per host
        killed_at = time.time()
        world.send_signal(signal.SIGKILL)
        world.wait(timeout=10)
        gone, alive = psutil.wait_procs(inside, timeout=10)
    finally:
        if world.poll() is None:
            world.kill()
    assert [process.pid for process in alive] == []
    # No process that was there at the kill is in any of them: they are gone.
    assert namespaces(started_before=killed_at) & made == set()
    assert Path("/proc/self/mountinfo").read_text() == mounts


def test_the_world_is_a_user_namespace_so_it_needs_no_root():
    assert UNSHARE[:3] == ["unshare", "--user", "--map-root-user"]
