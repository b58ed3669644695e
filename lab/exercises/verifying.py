"""`workbook exercise verify`: every exercise is sound. Its starter fails its check, each of its
wrong answers fails it too, and its stage passes it.

A wrong answer is a plausible mistake a learner makes (an AND where the query needs its OR
bracketed, a breaker with no half-open trial), kept as a patch to the stage in
exercises/<ID>/wrong/. A check that passes one would tell that learner they were right.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from lab.exercises.catalog import Exercise, all_exercises, copy_stage, find
from lab.exercises.checking import BROKEN, PASSES, run_check
from lab.exercises.patching import PatchError, apply_patch

TODO_MARK = "TODO(exercise)"
FEWEST_WRONG_ANSWERS = 2


def make_starter(exercise: Exercise, folder: Path) -> list[str]:
    """Copy the stage into `folder` (which must not exist) and apply the starter patch."""
    if not exercise.patch_path.is_file():
        raise PatchError(f"{exercise.id} has no starter.patch (write one with `workbook exercise patch`)")
    copy_stage(exercise, folder)
    return apply_patch(exercise.patch_path.read_text(), folder)


def wrong_answer_problems(exercise: Exercise, scratch: Path) -> list[str]:
    """Each wrong answer must apply to the stage and fail the check; there must be enough of them."""
    problems = []
    kept = sorted(path.stem for path in (exercise.folder / "wrong").glob("*.patch"))
    for name in sorted(set(kept) - set(exercise.wrong)):
        problems.append(f"wrong/{name}.patch is not under [wrong] in exercise.toml: what is wrong in it?")
    if len(exercise.wrong) < FEWEST_WRONG_ANSWERS:
        problems.append(f"{len(exercise.wrong)} wrong answers: a check must reject {FEWEST_WRONG_ANSWERS} or more")
    for name, why in exercise.wrong.items():
        folder = scratch / f"wrong-{name}"
        copy_stage(exercise, folder)
        try:
            apply_patch(exercise.wrong_patch_path(name).read_text(), folder)
        except (OSError, PatchError) as error:
            problems.append(f"the wrong answer {name!r} does not apply to steps/{exercise.stage}: {error}")
            continue
        result = run_check(exercise, folder)
        if result.outcome == PASSES:
            problems.append(f"the wrong answer {name!r} passes the check ({why})")
        elif result.outcome == BROKEN:
            problems.append(f"the wrong answer {name!r} crashes the check instead of failing it: {result.problem}")
    return problems


def verify_exercise(exercise: Exercise) -> list[str]:
    """Problems with one exercise: its patches, its starter's and wrong answers' checks (each must
    fail) and its stage's (must pass)."""
    problems = []
    with tempfile.TemporaryDirectory(prefix=f"exercise-{exercise.id}-") as scratch:
        starter, reference = Path(scratch) / "starter", Path(scratch) / "reference"
        try:
            files = make_starter(exercise, starter)
        except PatchError as error:
            return [f"the starter patch does not apply to steps/{exercise.stage}: {error}"]
        if not files:
            problems.append("the starter patch changes nothing")
        if not any(TODO_MARK in (starter / name).read_text() for name in files):
            problems.append(f"no {TODO_MARK} comment in {', '.join(files)}: where should a learner work?")
        result = run_check(exercise, starter)
        if result.outcome == PASSES:
            problems.append("the starter passes its check: the patch breaks nothing its tests see")
        elif result.outcome == BROKEN:
            problems.append(f"the starter's check crashes instead of failing: {result.problem}")
        problems += wrong_answer_problems(exercise, Path(scratch))
        copy_stage(exercise, reference)
        result = run_check(exercise, reference)
        if result.outcome != PASSES:
            why = result.problem or "; ".join(f"{f.node_id}: {f.message}" for f in result.failures)
            problems.append(f"the stage itself does not pass the check: {why}")
    return problems


def run_verify(ids: list[str]) -> int:
    exercises = [find(exercise_id) for exercise_id in ids] if ids else all_exercises()
    wrong = 0
    began = time.monotonic()
    for exercise in exercises:
        started = time.monotonic()
        problems = verify_exercise(exercise)
        took = f"{time.monotonic() - started:.0f} s"
        if problems:
            wrong += 1
            print(f"FAIL {exercise.id} ({took})", flush=True)
            for problem in problems:
                print(f"     {problem}", flush=True)
        else:
            answers = f"the starter and {len(exercise.wrong)} wrong answers fail its check"
            print(f"ok   {exercise.id}: {answers}, the stage passes it ({took})", flush=True)
    total = f"{len(exercises)} exercises in {time.monotonic() - began:.0f} s"
    print(f"{wrong} of {total} are wrong" if wrong else f"all {total} are right")
    return 1 if wrong else 0
