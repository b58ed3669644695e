"""`workbook up STAGE`: a stage's Procfile on 127.0.0.1, stopped cleanly by Ctrl-C."""

import signal
import subprocess
import sys

import pytest
import requests

from lab.runtime.process import ManagedProcess, free_port, port_answers, wait_until
from lab.testing.site_client import SiteClient


@pytest.mark.parametrize(
    "stop_signal, exit_code, started_by_a_script, twice",
    [(signal.SIGINT, 0, False, False), (signal.SIGTERM, 143, False, False), (signal.SIGINT, 0, True, False),
     (signal.SIGINT, 0, False, True)],
    ids=["ctrl-c", "kill", "ctrl-c-after-a-script-ignored-it", "ctrl-c-twice"])
def test_up_serves_a_stage_and_a_signal_stops_everything(
    tmp_path, stop_signal, exit_code, started_by_a_script, twice,
):
    web, api, control = free_port(), free_port(), free_port()
    site = SiteClient(f"http://127.0.0.1:{web}")

    def site_answers() -> bool:
        try:
            return site.home(timeout=0.5).ok
        except requests.RequestException:
            return False

    argv = [sys.executable, "-m", "lab", "--time-scale", "0.01", "up", "01-naive", "--workers", "2",
            "--web-port", str(web), "--twitter-port", str(api), "--twitter-control-port", str(control),
            "--data-dir", str(tmp_path)]
    if started_by_a_script:  # `cmd &` in a script starts it with SIGINT ignored, as `trap "" INT` does
        argv = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *argv]
    up = ManagedProcess("up", argv, ready=site_answers)
    with up:
        up.wait_ready(timeout=30)
        photo = site.new_photo()
        assert site.comment(photo, "hello from up").status_code == 303
        ledger = requests.get(f"http://127.0.0.1:{control}/_ledger", timeout=5).json()["tweets"]
        assert [t["user"] for t in ledger] == ["bob"]
        printed = up.log_text()
        assert f"http://127.0.0.1:{web}/" in printed
        assert f"http://127.0.0.1:{control}/" in printed

        up.signal(stop_signal)
        if twice:  # an impatient second Ctrl-C while it stops: it goes on stopping, with no traceback
            wait_until(lambda: "stopping" in up.log_text(), timeout=10, what="up stopping")
            up.signal(stop_signal)
        up.popen.wait(timeout=30)
        assert up.returncode == exit_code
        assert "Traceback" not in up.log_text()
    assert not any(port_answers("127.0.0.1", port) for port in (web, api, control))
    assert (tmp_path / "twitpic.sqlite3").is_file()  # the data went where it was told


def test_up_names_the_known_stages_when_one_is_missing():
    result = subprocess.run(
        [sys.executable, "-m", "lab", "up", "99-nothing"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "no stage '99-nothing'" in result.stderr and "01-naive" in result.stderr


def test_kestrel_and_bench_hand_their_options_to_their_own_parsers():
    for args in (["kestrel", "--help"], ["bench", "kestrel", "--help"]):
        result = subprocess.run(
            [sys.executable, "-m", "lab", *args], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
        assert "--quick" in result.stdout or "--fsync" in result.stdout


def test_up_says_at_once_which_port_is_taken_and_starts_nothing(tmp_path):
    import socket

    api, control = free_port(), free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        web = holder.getsockname()[1]
        up = subprocess.run(
            [sys.executable, "-m", "lab", "up", "01-naive", "--web-port", str(web), "--twitter-port", str(api),
             "--twitter-control-port", str(control), "--data-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60)
    assert up.returncode == 1
    assert up.stdout.startswith(f"workbook up: port {web} (the site) is taken by python")
    assert "stop it, or choose another with --web-port" in up.stdout
    assert "starting" not in up.stdout and not (tmp_path / "logs").exists()  # nothing started, no old log
    assert not port_answers("127.0.0.1", control)
