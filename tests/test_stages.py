"""lab.runtime.stages: the stages in steps/ and their Procfiles."""

import pytest

from lab.runtime.stages import STEPS_DIR, Stage, StageError, all_stages, parse_procfile


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
