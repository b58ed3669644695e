"""The lab's private world: user, network, mount and PID namespaces that only the lab lives in.

    unshare --user --map-root-user --net --mount --pid --fork --kill-child --mount-proc \\
        python -m lab.hosts.init python -m lab.hosts.cli ...

Inside it the lab is root of nothing but itself: it may make bridges, namespaces and routes
without root on the machine, where the kernel allows unprivileged user namespaces. No process,
namespace or mount it makes outlives it. When its first process ends, however it ends (SIGKILL
included), the kernel kills every process left in the PID namespace, and the network namespaces
and mounts go with them. If the command that made the world is killed, the world is killed with
it (a parent-death signal). Files are another matter: the logs and data folders the lab writes
under /tmp are removed when it stops in order, and left behind when it is killed.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import psutil

INSIDE = "WORKBOOK_HOSTS_WORLD"  # set in the world's processes
UNSHARE = ["unshare", "--user", "--map-root-user", "--net", "--mount", "--pid", "--fork", "--kill-child",
           "--mount-proc"]
UBUNTU_RESTRICTION = Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")


class WorldUnavailable(RuntimeError):
    pass


def inside() -> bool:
    return os.environ.get(INSIDE) == "1"


def why_not() -> str | None:
    """Why this machine cannot make the lab's world, with what to do; None when it can."""
    if not sys.platform.startswith("linux"):
        return (
            "the lab of hosts needs Linux network namespaces, which macOS and Windows do not have: run it "
            "in a Linux VM or container (the workbook's .devcontainer, or WSL2 on Windows)"
        )
    missing = [tool for tool in ("unshare", "nsenter", "ip") if shutil.which(tool) is None]
    if missing:
        return f"the lab of hosts needs {', '.join(missing)}: sudo apt-get install iproute2 util-linux"
    tried = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True, timeout=30)
    if tried.returncode == 0:
        return None
    said = tried.stderr.strip()
    if UBUNTU_RESTRICTION.exists() and UBUNTU_RESTRICTION.read_text().strip() == "1":
        return (
            f"this kernel restricts unprivileged user namespaces ({said}), as Ubuntu 24.04 does: allow "
            "them with `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`, or run the lab with sudo"
        )
    return f"this machine refused a user and network namespace: {said}"


def world_argv(argv: Sequence[str]) -> list[str]:
    """`argv` as it runs inside a new world of its own."""
    return [*UNSHARE, sys.executable, "-m", "lab.hosts.init", *argv]


def _ask_to_stop(unshare_pid: int) -> None:
    """SIGTERM to the world's first process, which passes it on to the lab, so that it stops in
    order."""
    try:
        for child in psutil.Process(unshare_pid).children():
            child.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        pass


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def run_in_world(argv: Sequence[str], **popen_options) -> int:
    """Run `argv` in a new world and wait for it; its exit code. Ctrl-C reaches the world, which
    stops in order; SIGTERM here is passed on to it."""
    reason = why_not()
    if reason:
        raise WorldUnavailable(reason)
    env = {**os.environ, INSIDE: "1", **popen_options.pop("env", {})}
    # If this process dies, even by SIGKILL, the kernel kills `unshare`, and with it the world.
    world = subprocess.Popen(world_argv(argv), env=env, preexec_fn=_die_with_parent, **popen_options)
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal sends it to the world too
    signal.signal(signal.SIGTERM, lambda signum, frame: _ask_to_stop(world.pid))
    try:
        return world.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
