"""The invariants matrix: which of the six invariants holds in which stage, from a real test run.

    pytest steps --invariants-report test-results/invariants.json
    workbook matrix --report test-results/invariants.json            write docs/generated/invariants.md
    workbook matrix --report test-results/invariants.json --check    fail if the page disagrees

The pytest plugin (`lab/testing/plugin.py`) records each invariant test's outcome; this module turns
those outcomes into a table, rows the invariants, columns the stages. A passed test is "holds", a
strict xfail is "breaks" with its reason as a footnote, a test marked `does_not_apply` is "does not
apply" with its reason. Anything else (a failure, another skip, a missing invariant or stage) is an
error, never a blank cell: the page shows only what a green run proved.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from lab.runtime.stages import REPO_ROOT, all_stages
from lab.testing.invariants import DOES_NOT_APPLY

PAGE = REPO_ROOT / "docs" / "generated" / "invariants.md"

# Every stage's tests/test_invariants.py has these six tests, in this order on the page.
INVARIANTS: dict[str, str] = {
    "test_comment_answers_fast_while_twitter_is_slow": "A comment answers fast while Twitter is slow",
    "test_site_stays_up_while_twitter_hangs": "The site stays up while Twitter hangs",
    "test_no_tweet_is_lost_during_an_outage": "No tweet is lost during an outage",
    "test_no_tweet_is_posted_twice_with_many_workers": "No tweet is posted twice with many workers",
    "test_no_tweet_is_lost_when_a_worker_is_killed": "No tweet is lost when a worker is killed",
    "test_no_tweet_is_lost_when_the_queue_restarts": "No tweet is lost when the queue restarts",
}

HOLDS = "✅ holds"
BREAKS = "❌ breaks"
NOT_APPLICABLE = "➖ does not apply"


class ReportError(ValueError):
    """The report cannot make a matrix: an invariant is missing, failed, skipped or unknown."""


@dataclass(frozen=True)
class Cell:
    holds: bool | None  # None: the invariant does not apply to the stage
    reason: str = ""  # why it breaks, from the strict xfail; or why it does not apply

    def describe(self) -> str:
        if self.holds is None:
            return f"{NOT_APPLICABLE} ({self.reason})"
        return HOLDS if self.holds else f"{BREAKS} ({self.reason})"

    def label(self) -> str:
        """What the cell says, before its footnote."""
        return HOLDS if self.holds else NOT_APPLICABLE if self.holds is None else BREAKS


# (invariant test name, stage name) -> its cell
Matrix = dict[tuple[str, str], Cell]


def load_report(path: Path | str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ReportError(f"cannot read the invariants report {path}: {error}") from None


def matrix_from_report(report: dict, stages: list[str]) -> Matrix:
    """One cell per invariant and stage; a gap or an outcome other than passed/xfailed is an error."""
    outcomes = report.get("stages")
    if not isinstance(outcomes, dict):
        raise ReportError("the report has no `stages`: was it written by `pytest --invariants-report`?")
    problems = []
    matrix: Matrix = {}
    for stage in stages:
        tests = outcomes.get(stage)
        if not tests:
            problems.append(f"{stage}: no invariant was run (run every stage's tests/test_invariants.py)")
            continue
        for unknown in sorted(set(tests) - set(INVARIANTS)):
            problems.append(f"{stage}: {unknown} is not one of the invariants")
        for test in INVARIANTS:
            outcome = tests.get(test, {}).get("outcome")
            reason = tests.get(test, {}).get("reason") or ""
            if test not in tests:
                problems.append(f"{stage}: {test} is missing from the report")
            elif outcome == "passed":
                matrix[test, stage] = Cell(holds=True)
            elif outcome == "xfailed" and reason:
                matrix[test, stage] = Cell(holds=False, reason=reason)
            elif outcome == "xfailed":
                problems.append(f"{stage}: {test} is an expected failure without a reason")
            elif outcome == "skipped" and reason.startswith(f"{DOES_NOT_APPLY}: "):
                matrix[test, stage] = Cell(holds=None, reason=reason.removeprefix(f"{DOES_NOT_APPLY}: "))
            elif outcome == "failed":
                problems.append(f"{stage}: {test} failed in this run (the matrix needs a green run)")
            else:
                problems.append(f"{stage}: {test} has the outcome {outcome!r}, not passed or xfailed")
    for extra in sorted(set(outcomes) - set(stages)):
        problems.append(f"{extra}: not a stage of this workbook")
    if problems:
        raise ReportError("the invariants report cannot make the matrix:\n  " + "\n  ".join(problems))
    return matrix


def render(matrix: Matrix, stages: list[str]) -> str:
    """The table, then one footnote per broken cell, numbered row by row."""
    lines = [
        "| invariant | " + " | ".join(f"`{stage}`" for stage in stages) + " |",
        "|---|" + ":-:|" * len(stages),
    ]
    notes = []
    for test, name in INVARIANTS.items():
        cells = []
        for stage in stages:
            cell = matrix[test, stage]
            if cell.holds:
                cells.append(HOLDS)
            else:
                notes.append(f"[^{len(notes) + 1}]: **{stage}**: {cell.reason}")
                cells.append(f"{cell.label()}[^{len(notes)}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + notes) + "\n"


_FOOTNOTE = re.compile(r"^\[\^(?P<label>[^\]]+)\]: \*\*(?P<stage>[^*]+)\*\*: (?P<reason>.*)$")
_NOTED_CELL = re.compile(
    f"(?P<kind>{re.escape(BREAKS)}|{re.escape(NOT_APPLICABLE)})" + r"\[\^(?P<label>[^\]]+)\]$"
)


def parse_page(text: str) -> tuple[list[str], Matrix]:
    """The stages and cells of a page written by `render`, to say which cells a new run changes."""
    notes = {m["label"]: m["reason"] for m in map(_FOOTNOTE.match, text.splitlines()) if m}
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|")
    ]
    if len(rows) < 2:
        return [], {}
    stages = [cell.strip("`") for cell in rows[0][1:]]
    names = {name: test for test, name in INVARIANTS.items()}
    matrix: Matrix = {}
    for row in rows[2:]:
        test = names.get(row[0], row[0])
        for stage, text_cell in zip(stages, row[1:], strict=False):
            noted = _NOTED_CELL.match(text_cell)
            if text_cell == HOLDS:
                matrix[test, stage] = Cell(holds=True)
            elif noted:
                holds = None if noted["kind"] == NOT_APPLICABLE else False
                matrix[test, stage] = Cell(holds=holds, reason=notes.get(noted["label"], "?"))
            else:
                matrix[test, stage] = Cell(holds=False, reason=f"unreadable cell {text_cell!r}")
    return stages, matrix


def differences(page_text: str, matrix: Matrix, stages: list[str]) -> list[str]:
    """What the committed page says that the run does not, one line per cell."""
    page_stages, page = parse_page(page_text)
    found = []
    if page_stages != stages:
        found.append(f"stages: the page has {page_stages}, the run has {stages}")
    for test, name in INVARIANTS.items():
        for stage in stages:
            shown, measured = page.get((test, stage)), matrix[test, stage]
            if shown != measured:
                was = shown.describe() if shown else "nothing"
                found.append(f"{name} / {stage}: the page says {was}, the run says {measured.describe()}")
    if not found and page_text != render(matrix, stages):
        found.append("the cells agree but the page's text differs from what `workbook matrix` writes")
    return found


def shown(path: Path) -> str:
    """A path as the reader typed it: relative to the current folder when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stages = [stage.name for stage in all_stages()]
    try:
        matrix = matrix_from_report(load_report(args.report), stages)
    except ReportError as error:
        print(f"workbook matrix: {error}", file=sys.stderr)
        return 2
    if args.check:
        committed = args.page.read_text() if args.page.is_file() else ""
        found = differences(committed, matrix, stages)
        if found:
            print(f"workbook matrix: {shown(args.page)} disagrees with {shown(args.report)}:", file=sys.stderr)
            for line in found:
                print(f"  {line}", file=sys.stderr)
            print("Regenerate it with `workbook matrix --report ...` from a full run.", file=sys.stderr)
            return 1
        print(f"{shown(args.page)} agrees with {shown(args.report)}")
        return 0
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text(render(matrix, stages))
    print(f"wrote {shown(args.page)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbook matrix",
        description="Write the invariants matrix page from a pytest run's invariants report, "
        "or check that the committed page agrees with it.",
    )
    parser.add_argument(
        "--report", type=Path, required=True, help="the JSON written by `pytest --invariants-report PATH`"
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the page disagrees")
    parser.add_argument("--page", type=Path, default=PAGE, help="the page (default docs/generated/invariants.md)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
