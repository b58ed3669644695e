"""Machines on one laptop: a network namespace per host, each with a real address on one bridge.

Everything lives inside a private "world" (`world.py`): a user, network, mount and PID namespace
of its own. Its root network namespace holds the bridge and the lab's own address (`OBSERVER`),
from which the lab drives the load and reads what happened. Each host is another network
namespace, held open by a small process, and joined to the bridge by a veth pair.

Faults are made with the kernel's own tools:

- a partition is a `blackhole` route on each side for each address on the other: a new connection
  fails at once, and the packets of one that was open are dropped, so its reads time out;
- a paused host is SIGSTOP to every process on it; a crashed one, SIGKILL to every one. The
  host's address stays on the network, so a client gets "connection refused" at once, where a
  machine that lost its power would leave it waiting for its timeouts.

The addresses (10.77.0.0/24) exist only inside the world: nothing sent to them leaves it.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import psutil

from lab.runtime.process import ManagedProcess, port_answers, wait_until

SUBNET = "10.77.0"
OBSERVER = f"{SUBNET}.1"  # the lab itself, on the bridge
BRIDGE = "lab0"


class NetworkError(RuntimeError):
    pass


def ip(*args: str, host: Host | None = None) -> None:
    """Run `ip ARGS`, in `host`'s network namespace if one is given; raise on failure."""
    argv = [*(host.enter() if host else []), "ip", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")


@dataclass
class Host:
    """One machine: a network namespace with an address, and the processes started on it."""

    name: str
    address: str
    holder: subprocess.Popen | None = None  # keeps the namespace alive
    processes: list[ManagedProcess] = field(default_factory=list)

    def enter(self) -> list[str]:
        """The command prefix that runs a program on this host."""
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", "--"]

    def port(self, usual: int) -> int:
        """The port this host's server listens on, given the port such a server usually takes: that
        one, since the host's ports are its own."""
        return usual

    def process(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike | None = None,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        ready=None,
        log_path: str | os.PathLike | None = None,
    ) -> ManagedProcess:
        """A process on this host, not started yet. It is ready once `ready()` is true, or its port
        answers at this host's address: the host's ports are its own, so no other server can hold it."""
        if ready is None and port is not None:
            ready = lambda: port_answers(self.address, port)  # noqa: E731
        managed = ManagedProcess(
            f"{self.name}:{name}", [*self.enter(), *argv], cwd=cwd, env=env, host=self.address,
            port=port, ready=ready, log_path=log_path,
        )
        self.processes.append(managed)
        return managed

    def pids(self) -> list[int]:
        """Every process running on this host, the processes' children included."""
        found = []
        for managed in self.processes:
            if managed.alive:
                try:
                    parent = psutil.Process(managed.pid)
                    found += [parent.pid, *(child.pid for child in parent.children(recursive=True))]
                except psutil.NoSuchProcess:
                    pass
        return found

    def calling(self, address: str, port: int) -> list[int]:
        """The processes on this host with a connection open to `address`:`port`. (psutil reads
        the lab's own network namespace; a host's sockets are listed in its processes' /proc.)"""
        wanted = f"{socket.htonl(int(ipaddress.IPv4Address(address))):08X}:{port:04X}"
        found = []
        for pid in self.pids():
            try:
                inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
                with open(f"/proc/{pid}/net/tcp") as table:
                    rows = [line.split() for line in table.readlines()[1:]]
            except OSError:  # gone meanwhile
                continue
            # columns: sl, local address, remote address, state (01: established), ..., inode (10th)
            if any(row[2] == wanted and row[3] == "01" and f"socket:[{row[9]}]" in inodes for row in rows):
                found.append(pid)
        return found

    def signal_all(self, signum: int) -> list[int]:
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        return pids


class Network:
    """The bridge and its hosts. `with Network({"web": 2, ...}) as net: net["web"].process(...)`."""

    def __init__(self, hosts: Mapping[str, int]):
        missing = [tool for tool in ("ip", "nsenter", "unshare") if shutil.which(tool) is None]
        if missing:
            raise NetworkError(f"the lab of hosts needs {', '.join(missing)} (iproute2 and util-linux)")
        self.hosts = {name: Host(name, f"{SUBNET}.{number}") for name, number in hosts.items()}
        self.cuts: list[tuple[Host, str]] = []

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def start(self) -> Network:
        ip("link", "set", "lo", "up")
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{OBSERVER}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for host in self.hosts.values():
            # A namespace lives as long as a process is in it: this one only waits.
            host.holder = subprocess.Popen(
                ["unshare", "--net", "sleep", "infinity"], stdin=subprocess.DEVNULL, start_new_session=True)
            wait_until(lambda h=host: _own_network(h.holder.pid), timeout=10, what=f"{host.name}'s namespace")
            veth = f"v-{host.name}"
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", str(host.holder.pid))
            ip("link", "set", veth, "master", BRIDGE, "up")
            ip("link", "set", "lo", "up", host=host)
            ip("addr", "add", f"{host.address}/24", "dev", "eth0", host=host)
            ip("link", "set", "eth0", "up", host=host)
        return self

    # -- faults ---------------------------------------------------------------------------------

    def partition(self, side: Iterable[str], other: Iterable[str]) -> None:
        """Cut every host of `side` off from every host of `other`, both ways; the observer sees all."""
        side, other = [self.hosts[name] for name in side], [self.hosts[name] for name in other]
        for near, far in [(a, b) for a in side for b in other] + [(b, a) for a in side for b in other]:
            ip("route", "add", "blackhole", f"{far.address}/32", host=near)
            self.cuts.append((near, far.address))

    def heal(self) -> None:
        while self.cuts:
            near, address = self.cuts.pop()
            ip("route", "del", "blackhole", f"{address}/32", host=near)

    def pause(self, name: str) -> list[int]:
        return self.hosts[name].signal_all(signal.SIGSTOP)

    def resume(self, name: str) -> list[int]:
        return self.hosts[name].signal_all(signal.SIGCONT)

    def crash(self, name: str) -> list[int]:
        return self.hosts[name].signal_all(signal.SIGKILL)

    # -- stopping -------------------------------------------------------------------------------

    def stop_processes(self) -> None:
        for host in self.hosts.values():
            host.signal_all(signal.SIGCONT)  # a paused process cannot stop
            for managed in reversed(host.processes):
                managed.stop()
                managed.remove_log()

    def stop(self) -> None:
        self.stop_processes()
        for host in self.hosts.values():
            # Deleting one end deletes both at once; a namespace's own teardown comes later, and
            # the next network's veth of the same name must not meet this one.
            subprocess.run(["ip", "link", "del", f"v-{host.name}"], capture_output=True, timeout=10)
            if host.holder is not None and host.holder.poll() is None:
                host.holder.kill()
                host.holder.wait()
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, timeout=10)

    def __enter__(self) -> Network:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _own_network(pid: int) -> bool:
    """Has `pid` entered a network namespace of its own yet (`unshare` makes it, then runs sleep)?"""
    try:
        return os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    except OSError:
        return False
