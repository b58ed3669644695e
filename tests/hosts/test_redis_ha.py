"""lab.hosts.redis_ha: a primary, two replicas and three Sentinels on six hosts."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.hosts.world import why_not, world_argv

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("redis_probe.py")

pytestmark = pytest.mark.skipif(why_not() is not None, reason=f"no lab of hosts here: {why_not()}")


def test_the_sentinels_promote_a_replica_when_the_primary_host_crashes():
    probe = subprocess.run(world_argv([sys.executable, str(PROBE)]), cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert probe.returncode == 0, probe.stderr
    seen = {line.pop("step"): line for line in map(json.loads, probe.stdout.splitlines())}
    assert seen["started"]["master"] == ["10.77.0.11", 6379]
    failed_over = seen["failed over"]
    promoted = (failed_over["master"][1], failed_over["role"], failed_over["items"], failed_over["replicas"])
    assert failed_over["master"][0] in ("10.77.0.12", "10.77.0.13")
    assert promoted == (6379, "master", 1000, 1)  # and the other replica copies it
    # Down after a second of silence, then a vote: a few seconds, never instant, never a minute.
    assert 1.0 < failed_over["seconds"] < 20
