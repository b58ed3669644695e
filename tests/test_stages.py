"""lab.runtime.stages: the stages in steps/ and their Procfiles."""

import os
import re

import pytest

from lab.runtime.stages import STEPS_DIR, Stage, StageError, all_stages, parse_procfile
from lab.runtime.timescale import STORY_SECONDS


def test_a_procfile_is_name_colon_command_in_order():
    text = "# the site\nweb: gunicorn app:app\n\nworker: python -m twitpic.worker --workers 2\n"
    assert parse_procfile(text) == {
        "web": "gunicorn app:app",
        "worker": "python -m twitpic.worker --workers 2",
    }
    assert list(parse_procfile("b: x\na: y\n")) == ["b", "a"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("web gunicorn\n", "line 1 is not `name: command`"),
        ("web: a\nweb: b\n", "repeats the process 'web'"),
        ("web:\n", "line 1"),
    ],
)
def test_a_bad_procfile_line_is_a_clear_error(text, message):
    with pytest.raises(StageError, match=message):
        parse_procfile(text)


@pytest.mark.parametrize("name", ["01-naive", "01", "1"])
def test_a_stage_is_found_by_folder_name_or_number(name):
    assert Stage.find(name).path == STEPS_DIR / "01-naive"


def test_every_stage_has_the_same_shape():
    stages = all_stages()
    assert stages, "no stages found"
    for stage in stages:
        for part in ("README.md", "Procfile", "pyproject.toml", "twitpic/__init__.py", "tests/test_invariants.py"):
            assert (stage.path / part).is_file(), f"{stage.name} has no {part}"
        assert {"web", "twitter"} <= set(stage.processes()), stage.name


def test_every_stage_tests_the_five_invariants_by_name():
    names = [
        "test_comment_answers_fast_while_twitter_is_slow",
        "test_site_stays_up_while_twitter_hangs",
        "test_no_tweet_is_lost_during_an_outage",
        "test_no_tweet_is_posted_twice_with_many_workers",
        "test_no_tweet_is_lost_when_a_worker_is_killed",
    ]
    for stage in all_stages():
        source = (stage.path / "tests" / "test_invariants.py").read_text()
        for name in names:
            assert f"def {name}(" in source, f"{stage.name} lacks {name}"


def test_a_missing_process_is_a_clear_error():
    with pytest.raises(StageError, match="has no 'scheduler' process"):
        Stage.find("01").process("scheduler", env={})


def test_the_release_runs_with_the_shells_environment_as_the_processes_do(tmp_path, monkeypatch):
    """`TWITPIC_DATABASE_URL=... workbook up 02-db-queue`: the release must create the tables in the
    database the web and job workers will use, not in the default SQLite file."""
    from lab.runtime.stages import Stage
    from lab.runtime.up import stage_environment

    chosen = tmp_path / "chosen.sqlite3"
    monkeypatch.setenv("TWITPIC_DATABASE_URL", f"sqlite:///{chosen}")
    env = stage_environment(data_dir=tmp_path / "data", workers=1, web_port=1, twitter_port=2,
                            twitter_control_port=3)
    Stage.find("02-db-queue").release(env=env)
    assert chosen.is_file()
    assert not (tmp_path / "data" / "twitpic.sqlite3").exists()


def test_a_line_that_runs_one_job_worker_is_started_worker_count_times():
    """Stage 04's `worker` line runs one `rq worker`: it is started WORKER_COUNT times, as honcho's
    `-c worker=N`; a line that reads WORKER_COUNT itself (stage 03) is started once."""
    from lab.runtime.up import instances

    rq = instances(Stage.find("04"), {"WORKER_COUNT": "3"})
    assert [name for line, name in rq if line == "worker"] == ["worker.1", "worker.2", "worker.3"]
    assert ("scheduler", "scheduler") in rq
    kestrel = instances(Stage.find("03"), {"WORKER_COUNT": "3"})
    assert [name for line, name in kestrel if line == "worker"] == ["worker"]


def test_the_story_durations_reach_a_stage_scaled_and_the_shell_wins(monkeypatch):
    monkeypatch.delenv("TWITPIC_BREAKER_COOLDOWN", raising=False)
    env = Stage.find("04").environment({"WORKBOOK_TIME_SCALE": "0.1"})
    assert float(env["TWITPIC_TWITTER_READ_TIMEOUT"]) == pytest.approx(1.0)
    assert env["RQ_MAINTENANCE_INTERVAL"] == "6"
    assert "TWITPIC_DATABASE_TIMEOUT" not in env  # the machine's waits are not the story's
    monkeypatch.setenv("TWITPIC_BREAKER_COOLDOWN", "7")
    assert "TWITPIC_BREAKER_COOLDOWN" not in Stage.find("04").environment({"WORKBOOK_TIME_SCALE": "0.1"})


SCALED_SETTINGS = {  # each stage's settings at a time scale of 0.1, which the lab passes as plain seconds
    "02": {"TWITTER_TIMEOUT": 1.0, "LEASE": 3.0, "POLL": 0.05, "RETRY_FIRST": 0.1, "RETRY_CAP": 6.0},
    "03": {"TWITTER_TIMEOUT": 1.0, "QUEUE_WAIT": 0.1, "RETRY_FIRST": 0.1, "RETRY_CAP": 6.0},
    "04": {"TWITTER_READ_TIMEOUT": 1.0, "BREAKER_COOLDOWN": 2.0, "RETRY_FIRST": 0.1, "RETRY_CAP": 6.0},
    "05": {"TWITTER_READ_TIMEOUT": 1.0, "BREAKER_COOLDOWN": 2.0, "RETRY_FIRST": 0.1, "RETRY_CAP": 6.0},
}


@pytest.mark.parametrize("stage", sorted(SCALED_SETTINGS))
def test_a_stage_runs_at_the_time_scale_through_its_own_settings(stage, monkeypatch):
    """The lab's time scale reaches a stage only as the plain durations its settings.py reads."""
    import json
    import subprocess
    import sys

    for name in STORY_SECONDS:
        monkeypatch.delenv(name, raising=False)
    found = Stage.find(stage)
    printed = subprocess.run(
        [sys.executable, "-c", "import json; from twitpic.settings import settings_from_environment as s; "
         "print(json.dumps({k: v for k, v in s().items() if isinstance(v, float)}))"],
        cwd=found.path, env={**os.environ, **found.environment({"WORKBOOK_TIME_SCALE": "0.1"})},
        capture_output=True, text=True, check=True,
    ).stdout
    settings = json.loads(printed)
    assert {name: settings.get(name) for name in SCALED_SETTINGS[stage]} == pytest.approx(SCALED_SETTINGS[stage])


def test_no_stage_app_knows_the_workbook_harness():
    """A reader copies a stage's twitpic/: the lab's time scale and test hooks stay out of it."""
    harness = re.compile(r"TIME_SCALE|WORKBOOK_|time_scale|\blab\b")
    found = [f"{path.relative_to(STEPS_DIR)}:{number}"
             for path in sorted(STEPS_DIR.glob("*/twitpic/**/*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1) if harness.search(line)]
    assert found == []


def test_a_process_manager_starts_an_exited_job_worker_again(tmp_path):
    """What `workbook up` and the drill do for RQ's job workers, which quit when Redis goes away."""
    import signal

    from lab.runtime.process import wait_until
    from lab.runtime.up import restart_exited, stop_all

    stage = Stage(tmp_path)
    (tmp_path / "Procfile").write_text(
        "worker: python -c 'import time; time.sleep(600)'\nredis: python -c 'import time; time.sleep(600)'\n")
    processes = {name: stage.process(line, env={}, instance=name).start()
                 for line, name in [("worker", "worker.1"), ("redis", "redis")]}
    try:
        first = processes["worker.1"]
        first.signal(signal.SIGKILL)
        processes["redis"].signal(signal.SIGKILL)
        wait_until(lambda: not first.alive and not processes["redis"].alive, timeout=10, what="both dead")
        assert restart_exited(stage, {}, processes) == ["worker.1 exited with code -9: started it again"]
        assert processes["worker.1"] is not first and processes["worker.1"].alive
        assert not processes["redis"].alive  # a server is not a job worker: its death stops the stage
    finally:
        stop_all(list(processes.values()))


def test_every_stage_page_names_its_icon_so_browsers_do_not_ask_for_a_missing_one():
    """Without a <link rel="icon">, a browser asks each site for /favicon.ico, and every stage
    answered 404: noise in the access log on every page."""
    missing = [stage.name for stage in all_stages()
               if '<link rel="icon"' not in (stage.path / "twitpic" / "templates" / "base.html").read_text()]
    assert missing == []
