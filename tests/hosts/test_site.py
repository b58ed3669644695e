"""The hosted site's own bookkeeping: which processes it holds, and the supervisor that starts again
the ones that exit. Every host on 127.0.0.1 (the loopback tier), so no namespace is needed."""

import os
import sys
import threading
from types import SimpleNamespace

from lab.hosts.loopback import LoopbackNetwork
from lab.hosts.site import HostedSite, site_hosts
from lab.runtime.process import ManagedProcess


def test_the_supervisor_starts_no_second_job_worker_beside_one_that_is_starting(tmp_path, monkeypatch):
    """A job worker that takes a while to start (a loaded machine) is not one that exited: the
    supervisor must not start another beside it, which no one would stop (scale-out's next round
    found its batch drained by it)."""
    net = LoopbackNetwork(site_hosts(2))
    waits = f"{sys.executable} -c 'import time; time.sleep(60)'"
    stage = SimpleNamespace(name="a stage", path=tmp_path, processes=lambda: {"worker": waits},
                            environment=lambda settings: {**os.environ, **settings})
    site = HostedSite(stage, net, tmp_path)
    passes, looked = [0], threading.Event()
    supervise_once, start = HostedSite._supervise_once, ManagedProcess.start

    def counted_pass(self):
        supervise_once(self)
        passes[0] += 1
        if passes[0] >= 2:
            looked.set()

    def slow_start(self, timeout=15.0):
        if threading.current_thread() is threading.main_thread():  # the test's own start
            assert looked.wait(10), "the supervisor made no pass"
        return start(self, timeout)

    monkeypatch.setattr(HostedSite, "_supervise_once", counted_pass)
    monkeypatch.setattr(ManagedProcess, "start", slow_start)
    site.start_supervisor()
    try:
        site.run(net["w1"], "worker")
    finally:
        site.stop()
        net.stop()
    started = [process.name for process in net["w1"].processes if process.popen is not None]
    assert started == ["w1:worker"], f"job workers started on w1: {started}"
    assert not site.exits, f"the supervisor counted exits: {dict(site.exits)}"
