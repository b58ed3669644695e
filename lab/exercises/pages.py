"""The hands-on exercises of each chapter, as a page section generated from exercises/*/exercise.toml.

    workbook exercise docs    write docs/generated/exercises-NN.md for chapters 00 to 06

Each chapter includes its file at its end; a test regenerates them and fails when one is stale.
"""

from __future__ import annotations

from lab.exercises.catalog import Exercise, all_exercises
from lab.exercises.patching import patched_files
from lab.runtime.stages import REPO_ROOT

PAGES_DIR = REPO_ROOT / "docs" / "generated"
CHAPTERS = (0, 1, 2, 3, 4, 5, 6)  # the story, the five stage chapters, and beyond the stages


def page_name(chapter: int) -> str:
    return f"exercises-{chapter:02d}.md"


def exercise_section(exercise: Exercise) -> str:
    files = ", ".join(f"`{name}`" for name in patched_files(exercise.patch_path.read_text()))
    lines = [
        f"#### {exercise.title}",
        "",
        exercise.task,
        "",
        f"Start with `workbook exercise start {exercise.id}`: it copies `steps/{exercise.stage}` to "
        f"`workspace/{exercise.id}/` with the part to write taken out of {files} (look for "
        f"`TODO(exercise)`). `workbook exercise check {exercise.id}` runs its tests and says what still fails.",
        "",
    ]
    for number, hint in enumerate(exercise.hints, start=1):
        lines.append(f'??? tip "Hint {number}"')
        lines.extend(f"    {line}" if line else "" for line in hint.splitlines())
        lines.append("")
    return "\n".join(lines)


def chapter_page(chapter: int, exercises: list[Exercise]) -> str:
    mine = [exercise for exercise in exercises if exercise.chapter == chapter]
    parts = [
        "### Hands-on, checked by the tests",
        "",
        "Each of these takes one part of the stage away; the stage's own tests tell you when it is back. "
        "`workbook exercise list` shows where you are. (Generated from `exercises/`.)",
        "",
    ]
    parts.extend(exercise_section(exercise) for exercise in mine)
    return "\n".join(parts).rstrip("\n") + "\n"


def expected_pages() -> dict[str, str]:
    exercises = all_exercises()
    return {page_name(chapter): chapter_page(chapter, exercises) for chapter in CHAPTERS}


def write_pages() -> list[str]:
    PAGES_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in expected_pages().items():
        path = PAGES_DIR / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            written.append(name)
    return written
