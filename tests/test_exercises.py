"""`workbook exercise`: the exercises start, check and verify as a learner and CI expect.

Every test works in a temporary workspace: the real workspace/ is never touched. The full
`workbook exercise verify` runs in CI on its own (`make exercises-verify`); here it runs on one
fast exercise, and on broken copies of it to show that it notices each kind of mistake.
"""

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from lab.exercises import pages
from lab.exercises.catalog import (
    WORKSPACE_ENV,
    all_exercises,
    copy_stage,
    find,
    workspace_root,
)
from lab.exercises.patching import PatchError, apply_patch, make_patch, patched_files
from lab.exercises.verifying import verify_exercise, wrong_answer_problems
from lab.runtime.stages import REPO_ROOT, Stage

FAST = "02-lease-claims"  # its check takes a few seconds and needs no server but the fake Twitter


def exercise_command(*args, workspace=None, timeout=120):
    env = {**os.environ, WORKSPACE_ENV: str(workspace)} if workspace else os.environ
    return subprocess.run(
        [sys.executable, "-m", "lab", "exercise", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO_ROOT,
    )


# -- the catalog ------------------------------------------------------------------------------


STAGE_CHAPTERS = (1, 2, 3, 4, 5)  # one per stage; 00 (the story) and 06 (beyond) may use any stage


def test_each_chapter_has_two_to_four_exercises_and_a_stage_chapter_uses_its_own_stage():
    exercises = all_exercises()
    assert set(Counter(exercise.chapter for exercise in exercises).values()) <= {2, 3, 4}
    chapters = sorted(Counter(exercise.chapter for exercise in exercises))
    assert chapters == list(pages.CHAPTERS) == [0, 1, 2, 3, 4, 5, 6]
    for exercise in exercises:
        assert exercise.id.startswith(f"{exercise.chapter:02d}-")
        if exercise.chapter in STAGE_CHAPTERS:
            assert exercise.stage == Stage.find(str(exercise.chapter)).name
        assert exercise.tests and exercise.task


# -- start and check --------------------------------------------------------------------------


def test_start_copies_the_stage_with_the_part_taken_out(tmp_path):
    result = exercise_command("start", FAST, workspace=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / FAST
    claims = (folder / "twitpic" / "claims.py").read_text()
    assert "TODO(exercise)" in claims
    assert claims != (REPO_ROOT / "steps" / "02-db-queue" / "twitpic" / "claims.py").read_text()
    assert not (folder / "data").exists() and not list(folder.rglob("__pycache__"))
    assert f"workbook exercise check {FAST}" in result.stdout


def test_start_refuses_an_existing_workspace_unless_forced(tmp_path):
    assert exercise_command("start", FAST, workspace=tmp_path).returncode == 0
    my_work = tmp_path / FAST / "twitpic" / "claims.py"
    my_work.write_text(my_work.read_text() + "# my work\n")

    again = exercise_command("start", FAST, workspace=tmp_path)
    assert again.returncode == 2
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert my_work.read_text().endswith("# my work\n")  # untouched

    forced = exercise_command("start", FAST, "--force", workspace=tmp_path)
    assert forced.returncode == 0
    assert not my_work.read_text().endswith("# my work\n")


def test_copy_makes_a_plain_copy_of_a_stage_to_explore_and_keeps_an_existing_one(tmp_path):
    stage = REPO_ROOT / "steps" / "03-kestrel"
    made_data = not (stage / "data").exists()
    (stage / "data").mkdir(exist_ok=True)  # what a run of the stage leaves, not copied
    try:
        result = exercise_command("copy", "03-kestrel", workspace=tmp_path)
    finally:
        if made_data:
            (stage / "data").rmdir()
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "03-kestrel-copy"
    assert (folder / "twitpic" / "worker.py").read_text() == (stage / "twitpic" / "worker.py").read_text()
    assert not (folder / "data").exists() and not list(folder.rglob("__pycache__"))
    assert "pytest" in result.stdout

    mine = folder / "twitpic" / "worker.py"
    mine.write_text(mine.read_text() + "# my change\n")
    again = exercise_command("copy", "03-kestrel", workspace=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert mine.read_text().endswith("# my change\n")

    unknown = exercise_command("copy", "../03-kestrel", workspace=tmp_path)
    assert unknown.returncode == 2 and "no stage" in unknown.stderr and "01-naive" in unknown.stderr


def test_check_fails_on_a_fresh_starter_and_names_the_failing_test(tmp_path):
    exercise_command("start", FAST, workspace=tmp_path)
    result = exercise_command("check", FAST, workspace=tmp_path)
    assert result.returncode == 1
    assert f"{FAST} still fails: 1 of 4 tests failing:" in result.stdout
    assert "tests/test_race.py::test_a_worker_killed_after_its_claim[sqlite-lease]" in result.stdout
    assert "the job of the dead job worker was not claimed again" in result.stdout  # the assertion's words
    assert "started, failing" in exercise_command("list", workspace=tmp_path).stdout


def test_check_passes_once_the_part_is_back(tmp_path):
    exercise_command("start", FAST, workspace=tmp_path)
    stage_claims = REPO_ROOT / "steps" / "02-db-queue" / "twitpic" / "claims.py"
    (tmp_path / FAST / "twitpic" / "claims.py").write_text(stage_claims.read_text())  # the solution
    result = exercise_command("check", FAST, workspace=tmp_path)
    assert result.returncode == 0, result.stdout
    assert f"{FAST} passes: all 4 of its tests pass" in result.stdout
    assert "passing" in exercise_command("list", workspace=tmp_path).stdout


def test_check_before_start_says_how_to_start(tmp_path):
    result = exercise_command("check", FAST, workspace=tmp_path)
    assert result.returncode == 2
    assert f"workbook exercise start {FAST}" in result.stderr


def test_the_default_workspace_is_git_ignored(monkeypatch):
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    root = workspace_root()
    assert root == REPO_ROOT / "workspace"
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", str(root / FAST / "twitpic" / "claims.py")], cwd=REPO_ROOT
    )
    assert ignored.returncode == 0


# -- verify -----------------------------------------------------------------------------------


def test_verify_passes_for_a_sound_exercise():
    result = exercise_command("verify", FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    wrong = f"the starter and {len(find(FAST).wrong)} wrong answers fail its check"
    assert f"ok   {FAST}: {wrong}, the stage passes it" in result.stdout


def with_patch(tmp_path, patch: str):
    """The fast exercise with another starter patch, in a folder of its own."""
    exercise = find(FAST)
    folder = tmp_path / exercise.id
    shutil.copytree(exercise.folder / "wrong", folder / "wrong")
    (folder / "starter.patch").write_text(patch)
    return dataclasses.replace(exercise, folder=folder)


def starter_patch(tmp_path, old: str, new: str) -> str:
    exercise = find(FAST)
    edited = tmp_path / "edited"
    (edited / "twitpic").mkdir(parents=True)
    claims = (exercise.stage_dir / "twitpic" / "claims.py").read_text()
    assert old in claims
    (edited / "twitpic" / "claims.py").write_text(claims.replace(old, new, 1))
    return make_patch(exercise.stage_dir, edited, ["twitpic/claims.py"])


def test_verify_rejects_a_starter_that_breaks_nothing(tmp_path):
    harmless = starter_patch(tmp_path, "def _lease_end", "# TODO(exercise): nothing to do\ndef _lease_end")
    problems = verify_exercise(with_patch(tmp_path, harmless))
    assert problems == ["the starter passes its check: the patch breaks nothing its tests see"]


def test_verify_rejects_a_wrong_answer_that_its_check_passes(tmp_path):
    exercise = find(FAST)
    harmless = starter_patch(tmp_path, "def _lease_end", "# said otherwise\ndef _lease_end")
    folder = tmp_path / exercise.id
    (folder / "wrong").mkdir(parents=True)
    (folder / "wrong" / "harmless.patch").write_text(harmless)
    (folder / "wrong" / "unexplained.patch").write_text(harmless)
    exercise = dataclasses.replace(exercise, folder=folder, wrong={"harmless": "a comment more"})

    assert wrong_answer_problems(exercise, tmp_path / "scratch") == [
        "wrong/unexplained.patch is not under [wrong] in exercise.toml: what is wrong in it?",
        "1 wrong answers: a check must reject 2 or more",
        "the wrong answer 'harmless' passes the check (a comment more)",
    ]


def test_verify_rejects_a_starter_that_crashes_instead_of_failing(tmp_path):
    crash = starter_patch(tmp_path, "from .jobs import Job", "from .jobs import Job, Nothing  # TODO(exercise)")
    [problem] = verify_exercise(with_patch(tmp_path, crash))
    assert problem.startswith("the starter's check crashes instead of failing")


def test_verify_rejects_a_patch_that_no_longer_applies(tmp_path):
    stale = starter_patch(tmp_path, "def _lease_end", "# TODO(exercise)\ndef _lease_end").replace(
        " def _lease_end", " def _lease_ends"
    )
    [problem] = verify_exercise(with_patch(tmp_path, stale))
    assert problem.startswith("the starter patch does not apply to steps/02-db-queue: twitpic/claims.py line")


def test_a_check_that_hangs_is_stopped_and_reported(tmp_path, monkeypatch):
    from lab.exercises import checking

    hanging = with_patch(tmp_path, "")
    (hanging.folder / "tests").mkdir()
    (hanging.folder / "tests" / "test_hang.py").write_text(
        "import time\n\n\ndef test_hang(twitter):\n    time.sleep(120)\n"
    )
    hanging = dataclasses.replace(hanging, tests=["tests/test_hang.py"])
    copy_stage(hanging, tmp_path / "copy")
    # Long enough for pytest to start and reach the hanging test on a loaded machine: a Ctrl-C
    # that came before pytest's own handler was set would end it with no teardown at all.
    monkeypatch.setattr(checking, "CHECK_TIMEOUT", 10)

    result = checking.run_check(hanging, tmp_path / "copy")

    assert (result.outcome, result.problem) == ("broken", "the tests did not finish in 10 s")
    assert "KeyboardInterrupt" in result.output, result  # stopped as by Ctrl-C: its fixtures were torn down


STRICT_XFAILS = """\
import pytest

BREAKS_IT = pytest.mark.xfail(strict=True, raises=AssertionError, reason="this stage breaks it")


@BREAKS_IT
def test_that_shows_the_breakage():
    assert 1 + 1 == 3


@BREAKS_IT
def test_that_shows_nothing():
    pass


@BREAKS_IT
def test_that_crashes():
    undefined_name
"""


@pytest.mark.parametrize(
    "test, outcome, first_line",
    [
        ("test_that_shows_the_breakage", "passes", "passes: its test fails, as its strict xfail expects"),
        ("test_that_shows_nothing", "fails", "still fails: 1 of 1 test failing:"),
        ("test_that_crashes", "broken",
         "could not be checked properly: the code crashed before the tests' assertions"),
    ],
)
def test_a_strict_xfail_passes_its_check_only_by_failing_as_expected(tmp_path, test, outcome, first_line):
    """An exercise whose task is to write a stage's strict-xfail test: XFAIL passes, XPASS fails."""
    from lab.exercises import checking
    from lab.exercises.cli import describe

    (tmp_path / "test_story.py").write_text(STRICT_XFAILS)
    exercise = dataclasses.replace(find(FAST), tests=[f"test_story.py::{test}"])

    result = checking.run_check(exercise, tmp_path)

    assert result.outcome == outcome, result.output
    lines = describe(result)
    assert lines[0].startswith(first_line)
    if outcome == "passes":
        assert result.expected_failures == [f"test_story.py::{test}"]
    elif outcome == "fails":
        assert result.failures[0].message == "[XPASS(strict)] this stage breaks it"
        assert "as a strict xfail, it must fail" in lines[-1]
    else:
        assert result.failures[0].message.startswith("NameError")


# -- patches ----------------------------------------------------------------------------------


def test_a_patch_applies_exactly_or_not_at_all(tmp_path):
    original, edited = tmp_path / "original", tmp_path / "edited"
    for folder in (original, edited):
        folder.mkdir()
    (original / "a.py").write_text("one\ntwo\nthree\n")
    (original / "b.py").write_text("alpha\nbeta\n")
    (edited / "a.py").write_text("one\n# TODO(exercise)\nthree\n")
    (edited / "b.py").write_text("alpha\nbeta\ngamma\n")
    patch = make_patch(original, edited, ["a.py", "b.py"])
    assert patched_files(patch) == ["a.py", "b.py"]

    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "a.py").write_text("one\ntwo\nthree\n")
    (copy / "b.py").write_text("alpha\nBETA\n")  # b.py changed since the patch was made
    with pytest.raises(PatchError, match="b.py line 2: expected 'beta', found 'BETA'"):
        apply_patch(patch, copy)
    assert (copy / "a.py").read_text() == "one\ntwo\nthree\n"  # nothing half-applied

    (copy / "b.py").write_text("alpha\nbeta\n")
    assert apply_patch(patch, copy) == ["a.py", "b.py"]
    assert [(copy / name).read_text() for name in ("a.py", "b.py")] == [
        (edited / name).read_text() for name in ("a.py", "b.py")
    ]


# -- the chapters' exercise sections ----------------------------------------------------------


def test_the_generated_exercise_pages_are_fresh():
    for name, text in pages.expected_pages().items():
        committed = pages.PAGES_DIR / name
        assert committed.is_file(), "missing: run `workbook exercise docs`"
        assert committed.read_text() == text, f"docs/generated/{name} is stale: run `workbook exercise docs`"


@pytest.mark.parametrize("chapter", pages.CHAPTERS)
def test_each_chapter_ends_with_its_exercises(chapter):
    [path] = (REPO_ROOT / "chapters").glob(f"{chapter:02d}-*.md")
    include = f'--8<-- "docs/generated/{pages.page_name(chapter)}"'
    assert path.read_text().rstrip().endswith(include)
    page = (pages.PAGES_DIR / pages.page_name(chapter)).read_text()
    for exercise in all_exercises():
        assert (f"workbook exercise start {exercise.id}`" in page) == (exercise.chapter == chapter)


SNIPPET = re.compile(r'^(?P<indent> *)--8<-- "(?P<path>steps/[^":]+)(?::(?P<section>[^"]+))?"$')


def snippet_lines(path: Path, section: str | None) -> set[str]:
    """The stripped lines a chapter's `--8<-- "path:section"` shows."""
    lines, inside = path.read_text().splitlines(), section is None
    shown = set()
    for line in lines:
        if section and f"--8<-- [start:{section}]" in line:
            inside = True
        elif section and f"--8<-- [end:{section}]" in line:
            inside = False
        elif inside:
            shown.add(line.strip())
    return shown


def unfolded_snippets(chapter: Path):
    """(path, section) of each code snippet a chapter shows open, not in a `???` block."""
    in_fold = False
    for line in chapter.read_text().splitlines():
        if line.startswith("???"):
            in_fold = True
        elif line.strip() and not line.startswith("    "):
            in_fold = False
        found = SNIPPET.match(line)
        if found and not in_fold:
            yield found["path"], found["section"]


def test_no_chapter_prints_an_exercises_answer_open_above_it():
    """The lines a starter takes out are its answer. A chapter up to the exercise's own (which ends
    with it) may show them only folded (`??? example`), for a reader to open once they have tried."""
    for exercise in all_exercises():
        patch = exercise.patch_path.read_text()
        taken_out = [line[1:].strip() for line in patch.splitlines() if line[:1] == "-" and line[:3] != "---"]
        answer = {line for line in taken_out if len(line) > 12 and not line.startswith("#")}
        files = {f"steps/{exercise.stage}/{name}" for name in patched_files(patch)}
        for chapter in sorted((REPO_ROOT / "chapters").glob("*.md")):
            if int(chapter.name[:2]) > exercise.chapter:
                continue
            for path, section in unfolded_snippets(chapter):
                if path in files:
                    shown = answer & snippet_lines(REPO_ROOT / path, section)
                    assert len(shown) <= len(answer) / 2, (
                        f"{chapter.name} shows {path}:{section}, the answer to {exercise.id}: fold it")


def test_no_check_needs_a_database_server_that_a_laptop_lacks():
    """A laptop has no MariaDB: a check that selects a MariaDB test is skipped there, and so can
    never pass. PostgreSQL is embedded, and SQLite is a file."""
    chosen: dict[str, list[str]] = {}
    for exercise in all_exercises():
        in_the_stage = [test for test in exercise.tests if (exercise.stage_dir / test.split("::")[0]).is_file()]
        chosen.setdefault(exercise.stage, []).extend(in_the_stage)
    for stage, tests in chosen.items():
        listing = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", "-p", "no:cacheprovider", *tests],
            cwd=REPO_ROOT / "steps" / stage, capture_output=True, text=True, timeout=120,
        )
        collected = [line for line in listing.stdout.splitlines() if "::" in line]
        assert len(collected) >= len(set(tests)), listing.stdout + listing.stderr
        assert [test for test in collected if "mariadb" in test] == [], f"{stage}: name the backends, [sqlite]"


@pytest.mark.long  # each runs its tests twice, on its starter and on its stage: `make test-long`
@pytest.mark.parametrize("exercise", all_exercises(), ids=lambda exercise: exercise.id)
def test_the_starter_fails_its_check_and_the_stage_passes_it(exercise):
    """What `workbook exercise verify` checks, one exercise per test, so they run side by side."""
    assert verify_exercise(exercise) == []


def test_hint_gives_one_more_hint_each_time_and_then_points_at_the_solution(tmp_path, capsys):
    from lab.exercises.cli import main

    exercise = next(e for e in all_exercises() if len(e.hints) >= 2)
    seen = []
    for _ in range(len(exercise.hints) + 1):
        assert main(["--workspace", str(tmp_path), "hint", exercise.id]) == 0
        seen.append(capsys.readouterr().out)
    assert seen[0].startswith(f"Hint 1 of {len(exercise.hints)}: {exercise.hints[0]}")
    assert "Hint 2" not in seen[0] and f"The next one: workbook exercise hint {exercise.id}" in seen[0]
    assert f"Hint 2 of {len(exercise.hints)}: {exercise.hints[1]}" in seen[1]
    assert seen[-1] == seen[-2]  # past the last hint: the same, all of them
    assert f"The answer itself: workbook exercise solution {exercise.id}" in seen[-1]
    main(["--workspace", str(tmp_path / "other"), "hint", exercise.id, "--all"])
    every = capsys.readouterr().out
    assert all(hint in every for hint in exercise.hints)


def test_the_solution_is_the_stage_s_code_where_the_starter_took_it_out(capsys):
    from lab.exercises.cli import main

    exercise = find("02-atomic-claim")
    assert main(["solution", exercise.id]) == 0
    shown = capsys.readouterr().out
    assert "--- starter/twitpic/claims.py\n+++ 02-db-queue/twitpic/claims.py" in shown
    added = [line[1:] for line in shown.splitlines() if line.startswith("+") and not line.startswith("+++")]
    removed = [line[1:] for line in shown.splitlines() if line.startswith("-") and not line.startswith("---")]
    stage_code = (exercise.stage_dir / "twitpic" / "claims.py").read_text()
    assert added and all(line in stage_code for line in added)
    assert any("TODO(exercise)" in line for line in removed)
