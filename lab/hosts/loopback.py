"""The lab of hosts without network namespaces: every host on 127.0.0.1, on ports of its own.

macOS has no network namespaces, and some Linux machines refuse them. There the lab
still runs the scenarios whose faults are made to processes alone: a host crashed (SIGKILL to
every process on it), frozen (SIGSTOP), a server restarted, a full Redis, more job workers.
Cutting a host off the network needs a network of hosts, so `partition` and `worker-cut` are left
out. Each host is the set of processes the lab started for it; each server takes a free port of
127.0.0.1 instead of its usual one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import psutil

from lab.hosts.network import Host, Network, NetworkError
from lab.runtime.process import LOCALHOST, free_port

# The scenarios that need no network of hosts.
SCENARIOS = ("failover", "memory-full", "restart", "worker-pause", "scale-out")


@dataclass
class LoopbackHost(Host):
    ports: dict[int, int] = field(default_factory=dict)  # usual port -> the one it has here

    def enter(self) -> list[str]:
        return []  # a program runs here as it is

    def port(self, usual: int) -> int:
        """A free port of 127.0.0.1 for this host's server, the same each time it is asked."""
        if usual not in self.ports:
            self.ports[usual] = free_port()
        return self.ports[usual]

    def calling(self, address: str, port: int) -> list[int]:
        """The processes of this host with a connection open to `address`:`port`."""
        found = []
        for pid in self.pids():
            try:
                connections = psutil.Process(pid).net_connections(kind="tcp")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if any(c.raddr and tuple(c.raddr) == (address, port) and c.status == psutil.CONN_ESTABLISHED
                   for c in connections):
                found.append(pid)
        return found


class LoopbackNetwork(Network):
    """Hosts that share 127.0.0.1, with the same faults as `Network` but a partition."""

    def __init__(self, hosts: Mapping[str, int]):
        self.hosts = {name: LoopbackHost(name, LOCALHOST) for name in hosts}
        self.cuts = []  # never any: a partition is refused

    def start(self) -> LoopbackNetwork:
        return self  # no bridge, no namespaces: each host is the processes started for it

    def partition(self, side, other) -> None:
        raise NetworkError("a partition needs a network of hosts (Linux network namespaces)")

    def stop(self) -> None:
        self.stop_processes()
