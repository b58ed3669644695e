"""The exercises, one folder each in exercises/<ID>/, and the workspace where learners do them.

exercises/<ID>/exercise.toml  title, chapter, stage, the tests that check it, the task, hints
exercises/<ID>/starter.patch  a unified diff that turns a copy of the stage into the starter
exercises/<ID>/tests/         optional: tests of its own, copied into the workspace's tests/
exercises/<ID>/wrong/<NAME>.patch
                              a plausible wrong answer, as a diff from the stage; exercise.toml's
                              [wrong] table says what is wrong in each, and its check must fail

The reference solution is the stage itself: the patch removes or breaks one part of it.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from lab.runtime.stages import REPO_ROOT, STEPS_DIR

EXERCISES_DIR = REPO_ROOT / "exercises"
WORKSPACE_ENV = "WORKBOOK_WORKSPACE"
# Never copied into a workspace: caches and the data a stage writes when it runs.
NOT_COPIED = shutil.ignore_patterns("__pycache__", ".pytest_cache", "data", "*.pyc")


class ExerciseError(ValueError):
    pass


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    chapter: int
    stage: str
    tests: list[str]  # pytest node ids, relative to the stage folder
    task: str
    hints: list[str]
    folder: Path
    wrong: dict[str, str]  # name of a wrong answer -> what is wrong in it

    def wrong_patch_path(self, name: str) -> Path:
        return self.folder / "wrong" / f"{name}.patch"

    @property
    def stage_dir(self) -> Path:
        return STEPS_DIR / self.stage

    @property
    def patch_path(self) -> Path:
        return self.folder / "starter.patch"

    @property
    def own_tests(self) -> list[Path]:
        return sorted((self.folder / "tests").glob("test_*.py"))

    @classmethod
    def load(cls, folder: Path) -> "Exercise":
        path = folder / "exercise.toml"
        try:
            data = tomllib.loads(path.read_text())
            exercise = cls(
                id=folder.name,
                title=data["title"],
                chapter=int(data["chapter"]),
                stage=data["stage"],
                tests=list(data["tests"]),
                task=data["task"].strip(),
                hints=[hint.strip() for hint in data.get("hints", [])],
                folder=folder,
                wrong={name: str(why).strip() for name, why in data.get("wrong", {}).items()},
            )
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as error:
            raise ExerciseError(f"{path}: {error.__class__.__name__}: {error}") from None
        if not exercise.stage_dir.is_dir():
            raise ExerciseError(f"{path}: no stage {exercise.stage!r} in steps/")
        return exercise


def all_exercises(root: Path = EXERCISES_DIR) -> list[Exercise]:
    """Every exercise, in chapter order, then by ID."""
    if not root.is_dir():
        return []
    found = [Exercise.load(folder) for folder in root.iterdir() if (folder / "exercise.toml").is_file()]
    return sorted(found, key=lambda exercise: (exercise.chapter, exercise.id))


def find(exercise_id: str, root: Path = EXERCISES_DIR) -> Exercise:
    exercises = all_exercises(root)
    for exercise in exercises:
        if exercise.id == exercise_id:
            return exercise
    known = ", ".join(exercise.id for exercise in exercises) or "none"
    raise ExerciseError(f"no exercise {exercise_id!r} (exercises: {known})")


def workspace_root(option: str | os.PathLike | None = None) -> Path:
    """--workspace, else $WORKBOOK_WORKSPACE, else workspace/ at the repository root (git ignores it)."""
    chosen = option or os.environ.get(WORKSPACE_ENV) or REPO_ROOT / "workspace"
    return Path(chosen).resolve()


def copy_stage(exercise: Exercise, destination: Path) -> None:
    """The pristine stage, without caches or run-time data, plus the exercise's own tests."""
    shutil.copytree(exercise.stage_dir, destination, ignore=NOT_COPIED)
    for test in exercise.own_tests:
        shutil.copy2(test, destination / "tests" / test.name)
