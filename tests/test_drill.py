"""`workbook drill --quick` for the `hang` scenario: the case study's orderings, with wide margins.

Only orderings and lower bounds set by the fake Twitter are asserted, never a measured speed-up. Duplicates are reported, not asserted: stages 03 and 04
deliver at least once, and a call that times out just as Twitter accepts it is posted again
(chapter 03, "At least once, and idempotency").
"""

import json
import signal
import subprocess
import sys
import time

import psutil

from lab.process import ManagedProcess


def test_the_quick_hang_drill_shows_the_case_study(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lab", "drill", "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    summary = {name: stage["summary"] for name, stage in results["stages"].items()}
    assert list(summary) == ["01-naive", "02-db-queue", "03-kestrel", "04-rq"]

    # When Twitter hangs, the naive site goes down with it; the others do not.
    assert summary["01-naive"]["availability_during_outage"] < 0.5
    for name in ("02-db-queue", "03-kestrel", "04-rq"):
        assert summary[name]["availability_during_outage"] >= 0.99, name
    # The naive site loses tweets; the queue servers lose none.
    assert summary["01-naive"]["tweets_lost"] > 0
    for name in ("03-kestrel", "04-rq"):
        assert summary[name]["tweets_lost"] == 0, name
    for name, stage in summary.items():
        assert stage["tweets_expected"] > 0
        assert stage["tweets_posted"] + stage["tweets_lost"] == stage["tweets_expected"], name
    # Comments wait for Twitter only in stage 01: its comments can be no faster than Twitter's
    # quickest answer (1 s of story time, scaled), and they are slower than stage 04's.
    twitter_min_ms = 1000 * results["time_scale"]
    assert summary["01-naive"]["comment_p50_ms_normal"] >= twitter_min_ms
    assert summary["01-naive"]["comment_p50_ms_normal"] > summary["04-rq"]["comment_p50_ms_normal"]

    page = (tmp_path / "drill.md").read_text()
    assert "## The case study's claims, checked" in page
    for image in ("latency.png", "backlog.png"):
        assert (tmp_path / image).read_bytes().startswith(b"\x89PNG")


def test_ctrl_c_in_the_middle_of_a_stage_leaves_no_process(tmp_path):
    drill = ManagedProcess(
        "drill",
        [sys.executable, "-m", "lab", "drill", "--quick", "--stages", "04-rq", "--out", str(tmp_path)],
    )
    with drill:
        # Wait until the stage is up and under load: its Redis and workers are running.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            names = " ".join(" ".join(p.cmdline()) for p in psutil.Process(drill.pid).children(recursive=True))
            if "twitpic.worker" in names and "redis-server" in names:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the stage never started:\n{drill.log_tail()}")
        time.sleep(2)  # in the middle of the load
        drill.signal(signal.SIGINT)
        drill.popen.wait(timeout=60)

    # pytest is a child subreaper: anything the drill left behind would now be our child.
    leftovers = [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    assert leftovers == [], [" ".join(p.cmdline()) for p in leftovers]
    assert not (tmp_path / "results.json").exists()  # an interrupted drill writes no results
