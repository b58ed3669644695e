"""Run inside a world by tests/hosts/test_network.py: build three hosts, fault them, print what
each connection did, as JSON, one line per step."""

import json
import socket
import sys
import time

from lab.hosts.network import OBSERVER, Network

ECHO = (
    "import socket, sys\n"
    "server = socket.create_server((sys.argv[1], 7000))\n"
    "while True:\n"
    "    connection, _ = server.accept()\n"
    "    connection.sendall(connection.recv(64))\n"
    "    connection.close()\n"
)
ASK = (
    "import socket, sys\n"
    "try:\n"
    "    with socket.create_connection((sys.argv[1], 7000), timeout=1) as c:\n"
    "        c.sendall(b'hello'); print(c.recv(64).decode())\n"
    "except OSError as error:\n"
    "    print(type(error).__name__)\n"
)


def ask(net, client: str, server: str) -> str:
    """What `client` got asking `server`'s echo: hello, or the error."""
    import subprocess

    said = subprocess.run([*net[client].enter(), sys.executable, "-c", ASK, net[server].address],
                          capture_output=True, text=True, timeout=20)
    return said.stdout.strip() or said.stderr.strip()


def report(step: str, **facts) -> None:
    print(json.dumps({"step": step, **facts}), flush=True)


with Network({"a": 2, "b": 3, "c": 4}) as net:
    for name in ("a", "b", "c"):
        net[name].process("echo", [sys.executable, "-c", ECHO, net[name].address], port=7000).start()
    report("connected", b_to_a=ask(net, "b", "a"), c_to_a=ask(net, "c", "a"),
           observer_sees=socket.create_connection((net["a"].address, 7000), timeout=1) is not None,
           observer=OBSERVER)
    net.partition(["a"], ["b"])
    report("partitioned", b_to_a=ask(net, "b", "a"), a_to_b=ask(net, "a", "b"), c_to_a=ask(net, "c", "a"))
    net.heal()
    report("healed", b_to_a=ask(net, "b", "a"), a_to_b=ask(net, "a", "b"))
    net.pause("a")
    report("paused", b_to_a=ask(net, "b", "a"))
    net.resume("a")
    report("resumed", b_to_a=ask(net, "b", "a"))
    if "--hold" in sys.argv:  # for the test that kills the world: keep everything running
        report("holding", pids=[pid for host in net.hosts.values() for pid in host.pids()])
        time.sleep(600)
