"""`workbook`: the command line a trainer and a learner type."""

import subprocess
import sys

import pytest

from lab.twitter import FakeTwitter


def workbook(*args, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], capture_output=True, text=True, timeout=timeout
    )


def test_help_lists_the_commands():
    result = workbook("--help")
    assert result.returncode == 0
    for command in ("twitter", "twitter-mode", "kestrel", "--time-scale"):
        assert command in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["twitter", "--latency-ms", "2000-1000"], "lo <= hi"),
        (["twitter", "--mode", "sideways"], "mode must be one of"),
        (["twitter", "--fail-rate", "2"], "from 0 to 1"),
        (["twitter", "--user", "nobody"], "NAME=TOKEN"),
        (["--time-scale", "0", "twitter"], "time scale must be"),
    ],
)
def test_bad_twitter_options_are_clear_errors(args, message):
    result = workbook(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_twitter_reports_a_port_in_use():
    with FakeTwitter.start() as running:
        port = running.api_url.rsplit(":", 1)[1]
        result = workbook("twitter", "--port", port, "--control-port", "0")
    assert result.returncode == 1
    assert "cannot listen" in result.stderr


def test_twitter_mode_shows_and_switches_a_running_fake_twitter():
    with FakeTwitter.start() as twitter:
        shown = workbook("twitter-mode", "--url", twitter.control_url)
        switched = workbook("twitter-mode", "flaky", "--fail-rate", "0.5", "--latency-ms", "5-9",
                            "--url", twitter.control_url)
        refused = workbook("twitter-mode", "sideways", "--url", twitter.control_url)
        state = twitter.state()

    assert shown.returncode == 0 and '"mode": "up"' in shown.stdout
    assert switched.returncode == 0
    assert state["mode"] == "flaky" and state["fail_rate"] == 0.5 and state["latency_ms"] == [5, 9]
    assert refused.returncode == 2 and "mode must be one of" in refused.stderr


def test_twitter_mode_without_a_server_says_so():
    from lab.runtime.process import free_port

    result = workbook("twitter-mode", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "no fake Twitter at" in result.stderr


def test_the_time_scale_flag_reaches_the_server():
    from lab.runtime.process import ManagedProcess, free_port

    port, control = free_port(), free_port()
    twitter = FakeTwitter(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{control}")
    process = ManagedProcess(
        "twitter",
        [sys.executable, "-m", "lab", "--time-scale", "0.25", "twitter",
         "--port", str(port), "--control-port", str(control)],
        ready=twitter.answers,
    )
    with process:
        assert twitter.state()["time_scale"] == 0.25
        assert f"fake Twitter API:  http://127.0.0.1:{port}/2/tweets" in process.log_text()
    assert process.returncode == 0  # SIGTERM is a clean stop


@pytest.mark.parametrize("flag", ["--web-workers", "--workers"])
def test_up_takes_web_workers_under_the_new_name_and_the_old(flag):
    from lab.cli import build_parser

    args = build_parser().parse_args(["up", "01-naive", flag, "3"])
    assert args.web_workers == 3


def test_queue_stats_says_when_a_queue_does_not_exist_yet(tmp_path):
    from lab.runtime.kestrel_server import kestrel_process
    from lab.testing.kestrel import RawClient

    with kestrel_process(tmp_path / "queues") as server:
        empty = workbook("queue-stats", "--port", str(server.port), "--queue", "tweets")
        assert empty.returncode == 0
        assert "no queue 'tweets'" in empty.stdout
        with RawClient(server.port) as client:
            assert client.set("tweets", b"hello") == b"STORED\r\n"
        one = workbook("queue-stats", "--port", str(server.port), "--queue", "tweets")
        assert "queue_tweets_items 1" in one.stdout.splitlines()
        assert "no queue" not in one.stdout
