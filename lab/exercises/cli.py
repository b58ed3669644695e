"""`workbook exercise`: do an exercise in a workspace copy of its stage, and check it.

    workbook exercise list                  every exercise and how far you are with it
    workbook exercise start 02-atomic-claim copy the stage to workspace/<ID>/ with a part taken out
    workbook exercise check 02-atomic-claim run the exercise's tests there; say what still fails
    workbook exercise hint 02-atomic-claim  the next hint, one at a time (--all: every one)
    workbook exercise solution 02-atomic-claim  the stage's answer, as a diff from the starter
    workbook exercise verify                for CI: every starter and wrong answer fails its check,
                                            every stage passes it
    workbook exercise docs                  regenerate each chapter's exercise section
    workbook exercise patch ID DIR          (for authors) write starter.patch from an edited copy DIR
    workbook exercise patch ID DIR --wrong NAME   (for authors) write wrong/NAME.patch: a wrong answer

`--workspace DIR` (or WORKBOOK_WORKSPACE) puts the workspace elsewhere than workspace/.
"""

from __future__ import annotations

import argparse
import difflib
import filecmp
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from lab.exercises.catalog import (
    NOT_COPIED,
    REPO_ROOT,
    Exercise,
    ExerciseError,
    all_exercises,
    find,
    workspace_root,
)
from lab.exercises.checking import BROKEN, FAILS, PASSES, CheckResult, run_check
from lab.exercises.patching import PatchError, make_patch
from lab.exercises.verifying import TODO_MARK, make_starter, run_verify

XPASS_STRICT = "[XPASS(strict)]"  # how pytest reports a strict xfail test that passed
LAST_CHECK = ".exercise-check"  # in a workspace: the outcome of its last check


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbook exercise", description="Exercises: a stage with one part taken out, checked by its tests."
    )
    parser.add_argument("--workspace", type=Path, metavar="DIR",
                        help="where exercises are started (default workspace/)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="every exercise and its state in your workspace")
    start = commands.add_parser(
        "start", help="copy the exercise's stage to the workspace, with the part to write taken out")
    start.add_argument("id")
    start.add_argument("--force", action="store_true",
                       help="replace the workspace copy if it exists (your changes go)")
    check = commands.add_parser("check", help="run the exercise's tests in its workspace; say what still fails")
    check.add_argument("id")
    check.add_argument("-v", "--verbose", action="store_true", help="also print pytest's own output")
    hint = commands.add_parser("hint", help="print the exercise's next hint (each call, one more)")
    hint.add_argument("id")
    hint.add_argument("--all", action="store_true", help="print every hint at once")
    solution = commands.add_parser("solution", help="the answer: the stage's code, as a diff from the starter")
    solution.add_argument("id")
    verify = commands.add_parser(
        "verify", help="every starter and wrong answer must fail its check and every stage pass it (CI)")
    verify.add_argument("ids", nargs="*", metavar="ID", help="only these exercises (default: all)")
    copy = commands.add_parser(
        "copy", help="a plain copy of a stage in the workspace, to change and test without touching steps/")
    copy.add_argument("stage", help="a stage's folder name, e.g. 01-naive")
    copy.add_argument("--force", action="store_true",
                      help="replace the workspace copy if it exists (your changes go)")
    commands.add_parser("docs", help="write docs/generated/exercises-NN.md from the exercises")
    patch = commands.add_parser("patch", help="write an exercise's starter.patch from an edited copy of its stage")
    patch.add_argument("id")
    patch.add_argument("edited", type=Path, help="a copy of the stage with the exercise's part taken out")
    patch.add_argument("--wrong", metavar="NAME",
                       help="the copy holds a wrong answer: write wrong/NAME.patch, which the check must reject")
    return parser


def _shown(path: Path) -> str:
    """A path relative to where the command runs when it is under it, else in full."""
    path = Path(path).resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


# -- list -------------------------------------------------------------------------------------


def exercise_state(exercise: Exercise, workspace: Path) -> str:
    folder = workspace / exercise.id
    if not folder.is_dir():
        return "not started"
    last = folder / LAST_CHECK
    outcome = last.read_text().strip() if last.is_file() else ""
    return {PASSES: "passing", FAILS: "started, failing", BROKEN: "started, failing"}.get(outcome, "started")


def run_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    workspace = workspace_root(args.workspace)
    table = Table(title=f"Exercises (workspace: {_shown(workspace)})")
    for column in ("ID", "chapter", "title", "state"):
        table.add_column(column)
    colours = {"passing": "green", "not started": "dim"}
    for exercise in all_exercises():
        state = exercise_state(exercise, workspace)
        colour = colours.get(state, "yellow")
        table.add_row(exercise.id, f"{exercise.chapter:02d}", exercise.title, f"[{colour}]{state}[/{colour}]")
    Console().print(table)
    print("Start one with: workbook exercise start ID")
    return 0


# -- start ------------------------------------------------------------------------------------


def run_start(args) -> int:
    exercise = find(args.id)
    folder = workspace_root(args.workspace) / exercise.id
    if folder.exists():
        if not args.force:
            print(
                f"workbook exercise: {_shown(folder)} already exists and may hold your work; "
                f"check it with `workbook exercise check {exercise.id}`, or start again with --force",
                file=sys.stderr,
            )
            return 2
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    files = make_starter(exercise, folder)
    print(f"Started {exercise.id}: {exercise.title} (chapter {exercise.chapter:02d}, stage {exercise.stage})")
    print(f"Your copy of the stage: {_shown(folder)}")
    for name in files:
        print(f"Edit: {_shown(folder / name)}  (look for {TODO_MARK})")
    print()
    print(exercise.task)
    print()
    print(f"Check it: workbook exercise check {exercise.id}")
    if exercise.hints:
        print(f"Stuck?    workbook exercise hint {exercise.id}")
    return 0


def run_copy(args) -> int:
    """The chapters' "explore by hand" items that change code work on this copy, so that the
    stage in steps/ stays as the tests and the other exercises expect it."""
    stage = REPO_ROOT / "steps" / args.stage
    if "/" in args.stage or not (stage / "twitpic").is_dir():
        stages = ", ".join(sorted(path.name for path in (REPO_ROOT / "steps").iterdir() if path.is_dir()))
        raise ExerciseError(f"no stage {args.stage!r} (stages: {stages})")
    folder = workspace_root(args.workspace) / f"{args.stage}-copy"
    if folder.exists():
        if not args.force:
            print(f"workbook exercise: {_shown(folder)} already exists and may hold your changes; "
                  f"use it, or start again with --force", file=sys.stderr)
            return 2
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(stage, folder, ignore=NOT_COPIED)
    print(f"A copy of {args.stage} to change: {_shown(folder)}")
    print(f"Test it: cd {shlex.quote(_shown(folder))} && pytest")
    return 0


# -- check ------------------------------------------------------------------------------------


def describe(result: CheckResult) -> list[str]:
    """What a learner needs to read: which tests still fail, and the first line of why."""
    total = len(result.passed) + len(result.failures)
    lines = []
    if result.outcome == PASSES:
        expected = len(result.expected_failures)  # strict xfails: they pass the check by failing
        if total == 1 and expected:
            return ["passes: its test fails, as its strict xfail expects: this stage breaks what it checks"]
        if total == 1:
            return ["passes: its test passes"]
        by_failing = f" ({expected} by failing, as strict xfails)" if expected else ""
        return [f"passes: all {total} of its tests pass{by_failing}"]
    if result.outcome == BROKEN:
        lines.append(f"could not be checked properly: {result.problem}")
    if result.failures:
        tests = "test" if total == 1 else "tests"
        lines.append(f"still fails: {len(result.failures)} of {total} {tests} failing:")
        for failure in result.failures:
            lines.append(f"  {failure.node_id}")
            lines.append(f"      {failure.message}")
            if failure.message.startswith(XPASS_STRICT):
                lines.append(
                    "      it passed, but this stage breaks what it checks: as a strict xfail, it must fail")
    return lines


def run_check_command(args) -> int:
    exercise = find(args.id)
    folder = workspace_root(args.workspace) / exercise.id
    if not folder.is_dir():
        print(f"workbook exercise: {exercise.id} is not started: workbook exercise start {exercise.id}",
              file=sys.stderr)
        return 2
    ids = "test id" if len(exercise.tests) == 1 else "test ids"
    print(f"Checking {exercise.id} in {_shown(folder)}: {len(exercise.tests)} {ids}, "
          "a few seconds to half a minute")
    result = run_check(exercise, folder)
    (folder / LAST_CHECK).write_text(result.outcome + "\n")
    if args.verbose or result.outcome == BROKEN:
        print(result.output.rstrip() if args.verbose else "\n".join(result.output.rstrip().splitlines()[-40:]))
    mark = "✓" if result.outcome == PASSES else "✗"
    for number, line in enumerate(describe(result)):
        print(f"{mark} {exercise.id} {line}" if number == 0 else line)
    if result.outcome != PASSES:
        print(f"The whole story: cd {shlex.quote(_shown(folder))} && pytest {shlex.join(exercise.tests)}")
        if exercise.hints:
            print(f"Stuck? workbook exercise hint {exercise.id}")
        return 1
    return 0


# -- hint -------------------------------------------------------------------------------------


HINTS_SHOWN = ".hints-shown.json"  # in the workspace root: how many hints of each exercise were shown


def run_hint(args) -> int:
    exercise = find(args.id)
    hints = exercise.hints
    if not hints:
        print(f"{exercise.id} has no hints: its task says it all.")
        return 0
    record = workspace_root(args.workspace) / HINTS_SHOWN
    shown = json.loads(record.read_text()) if record.is_file() else {}
    if args.all:
        upto = len(hints)
    else:
        upto = min(shown.get(exercise.id, 0) + 1, len(hints))
    for number in range(1, upto + 1):
        print(f"Hint {number} of {len(hints)}: {hints[number - 1]}\n")
    if upto < len(hints):
        print(f"The next one: workbook exercise hint {exercise.id}")
    else:
        print(f"That was the last hint. The answer itself: workbook exercise solution {exercise.id}")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({**shown, exercise.id: upto}, indent=1) + "\n")
    return 0


# -- solution ---------------------------------------------------------------------------------


def solution_diff(exercise: Exercise) -> str:
    """The stage's own code for the part the starter takes out: a diff from the starter to the stage."""
    with tempfile.TemporaryDirectory() as scratch:
        starter = Path(scratch) / "starter"
        files = make_starter(exercise, starter)
        lines = []
        for name in files:
            before = (starter / name).read_text().splitlines(keepends=True)
            after = (exercise.stage_dir / name).read_text().splitlines(keepends=True)
            lines += difflib.unified_diff(before, after, f"starter/{name}", f"{exercise.stage}/{name}")
    return "".join(lines)


def run_solution(args) -> int:
    exercise = find(args.id)
    print(f"{exercise.id}: the stage's answer, as a diff from the starter (lines with + are the stage's).\n")
    print(solution_diff(exercise), end="")
    return 0


# -- docs and patch (for authors) -------------------------------------------------------------


def run_docs(args) -> int:
    from lab.exercises.pages import PAGES_DIR, write_pages

    written = write_pages()
    print(f"wrote {', '.join(written)} in {_shown(PAGES_DIR)}" if written else "the exercise pages are up to date")
    return 0


def changed_files(stage: Path, edited: Path) -> list[str]:
    """Files under both folders whose text differs (new or missing files are not for starters)."""
    changed = []
    for path in sorted(stage.rglob("*")):
        name = path.relative_to(stage)
        if path.is_file() and "__pycache__" not in name.parts and (edited / name).is_file():
            if not filecmp.cmp(path, edited / name, shallow=False):
                changed.append(name.as_posix())
    return changed


def run_patch(args) -> int:
    exercise = find(args.id)
    files = changed_files(exercise.stage_dir, args.edited)
    if not files:
        print(f"workbook exercise: {args.edited} does not differ from steps/{exercise.stage}", file=sys.stderr)
        return 2
    path = exercise.wrong_patch_path(args.wrong) if args.wrong else exercise.patch_path
    path.parent.mkdir(exist_ok=True)
    path.write_text(make_patch(exercise.stage_dir, args.edited, files))
    print(f"wrote {_shown(path)}: {', '.join(files)}")
    if args.wrong and args.wrong not in exercise.wrong:
        print(f"say what is wrong in it under [wrong] in {_shown(exercise.folder / 'exercise.toml')}")
    return 0


COMMANDS = {
    "list": run_list,
    "start": run_start,
    "check": run_check_command,
    "hint": run_hint,
    "solution": run_solution,
    "verify": lambda args: run_verify(args.ids),
    "copy": run_copy,
    "docs": run_docs,
    "patch": run_patch,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ExerciseError, PatchError) as error:
        print(f"workbook exercise: {error}", file=sys.stderr)
        return 2
