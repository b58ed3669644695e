"""`workbook fresh-machine`: the README's commands on a machine that has nothing else.

A minimal Debian root made with `debootstrap`, holding only what the README asks for (`python3
python3-venv make git`), a user with no rights, and a clone of this repository. As that user,
`make install` runs with the network (it downloads the locked packages), then `make test` runs in
a network namespace of its own, where only its loopback exists: no service of this machine (its
PostgreSQL, MariaDB or Redis) can be reached, as on a laptop that has none. The suite chooses the
Python: bookworm has 3.11, trixie 3.13.

The run says `CI=true`, as CI does, so that the check that nothing outside the lock is installed
runs too: only MariaDB's tests (no server) and the browser check's (no Chromium) may skip.

It needs root (debootstrap, chroot, mounts), and `debootstrap` (apt install debootstrap). Every
mount and process lives in namespaces that end with the run, even after Ctrl-C; the root is
deleted afterwards unless `--keep`.

The packages are fetched through whatever TLS this machine trusts: its CA bundle is copied into
the root, and pip is pointed at it, as a laptop behind the same network would need.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

from lab.runtime.stages import REPO_ROOT

README_PACKAGES = ("python3", "python3-venv", "make", "git")  # README.md: Python, make and git
DEFAULT_MIRROR = "http://deb.debian.org/debian"
USER = "learner"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # where Debian's tools look for it
PATH = "/usr/local/bin:/usr/bin:/bin"


class FreshMachineError(RuntimeError):
    pass


def host_ca_bundle() -> Path:
    """The CA bundle this machine's pip trusts: pip's `cert` setting, else Python's default."""
    named = os.environ.get("PIP_CERT") or pip_config("global.cert")
    for candidate in (named, ssl.get_default_verify_paths().cafile, CA_BUNDLE):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise FreshMachineError("no CA bundle found to copy into the root")


def pip_config(key: str) -> str | None:
    result = subprocess.run([sys.executable, "-m", "pip", "config", "get", key], capture_output=True, text=True)
    return result.stdout.strip() or None if result.returncode == 0 else None


def check_host() -> None:
    if os.geteuid() != 0:
        raise FreshMachineError("it needs root: debootstrap, chroot and mounts (sudo workbook fresh-machine)")
    for tool, package in (("debootstrap", "debootstrap"), ("unshare", "util-linux"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            raise FreshMachineError(f"it needs {tool}: apt install {package}")


def build_root(root: Path, suite: str, mirror: str) -> None:
    """A minimal Debian with the README's packages, the host's CA bundle, a user, and a clone."""
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(README_PACKAGES)}", suite, str(root), mirror],
        check=True, stdout=subprocess.DEVNULL,
    )
    (root / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(host_ca_bundle(), root / CA_BUNDLE.lstrip("/"))
    (root / "etc/pip.conf").write_text(f"[global]\ncert = {CA_BUNDLE}\n")
    subprocess.run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
    home = root / "home" / USER
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(home / "workbook")], check=True)
    uid = int(subprocess.run(["chroot", str(root), "id", "-u", USER], check=True, capture_output=True,
                             text=True).stdout)
    for path in (home, *home.rglob("*")):
        os.lchown(path, uid, uid)


def as_learner(root: Path, command: str, network: bool) -> list[str]:
    """`command` as the user, in the root, in mount and pid namespaces of its own (and, without
    `network`, a network namespace with only its loopback)."""
    mounts = (
        f"mount -t proc proc {root}/proc && mount --rbind /dev {root}/dev && "
        f"mount -t tmpfs tmpfs {root}/dev/shm && "
    )
    loopback = "" if network else "ip link set lo up && "
    inside = (
        f"{mounts}{loopback}exec chroot --userspec={USER}:{USER} {root} "
        f"env -i HOME=/home/{USER} USER={USER} PATH={PATH} LANG=C.UTF-8 CI=true "
        f"sh -c 'cd ~/workbook && {command}'"
    )
    namespaces = ["--mount", "--pid", "--fork", "--kill-child", "--propagation", "private"]
    return ["unshare", *namespaces, *([] if network else ["--net"]), "sh", "-c", inside]


def run_step(root: Path, command: str, network: bool) -> tuple[int, float, str]:
    started = time.monotonic()
    result = subprocess.run(as_learner(root, command, network), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    return result.returncode, time.monotonic() - started, result.stdout


def summary_line(output: str) -> str:
    """pytest's last line: `== 770 passed, 5 xfailed in 184.52s ==`."""
    lines = [line for line in output.splitlines() if re.search(r"\b(passed|failed|error)\b.* in [\d.]+s", line)]
    return lines[-1].strip("= ") if lines else "(no pytest summary)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbook fresh-machine", description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default="trixie", help="the Debian release: trixie (Python 3.13, the "
                        "default) or bookworm (3.11)")
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help=f"the Debian mirror (default {DEFAULT_MIRROR})")
    parser.add_argument("--test", default="make test", help="the test command (default: make test)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build the root in DIR and keep it")
    args = parser.parse_args(argv)
    try:
        check_host()
    except FreshMachineError as error:
        print(f"workbook fresh-machine: {error}", file=sys.stderr)
        return 2
    root = (args.keep or REPO_ROOT / "build" / "fresh-machine" / args.suite).resolve()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    try:
        started = time.monotonic()
        build_root(root, args.suite, args.mirror)
        python = subprocess.run(["chroot", str(root), "python3", "--version"], capture_output=True, text=True)
        print(f"{args.suite}: {' '.join(README_PACKAGES)} in {time.monotonic() - started:.0f} s, "
              f"{python.stdout.strip()}", flush=True)
        code, seconds, output = run_step(root, "make install", network=True)
        print(f"make install: exit {code} in {seconds:.0f} s", flush=True)
        if code != 0:
            print(output[-5000:])
            return code
        code, seconds, output = run_step(root, args.test, network=False)
        print(output[-8000:] if code != 0 else "\n".join(output.splitlines()[-40:]))
        if code != 0:  # the names of what failed come before the skips in pytest's summary: say them last
            failed = [line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]
            print("\n".join(["what failed:", *failed]) if failed else "what failed: no FAILED or ERROR line")
        print(f"{args.test} (no network but its own loopback): exit {code} in {seconds:.0f} s: "
              f"{summary_line(output)}", flush=True)
        return code
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
