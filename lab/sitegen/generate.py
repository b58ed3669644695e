"""`workbook generate-docs`: rewrite every docs page that is generated from the code.

    workbook generate-docs                                     the CLI reference, the drill's headline
                                                               figures, the exercise lists and the
                                                               stage diffs
    workbook generate-docs --report test-results/invariants.json     ...and the invariants matrix

Each of these pages has a test that fails when the committed page is stale; this one command
brings them all up to date. The invariants matrix needs a test run's report (`make test` writes
one), so it is rewritten only when one is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lab.runtime.stages import REPO_ROOT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbook generate-docs",
        description="Rewrite the generated docs pages: the CLI reference, the drill's headline "
        "figures, the exercise lists, the stage diffs, and the invariants matrix when a report is given.",
    )
    parser.add_argument(
        "--report",
        type=Path,
        help="an invariants report from `pytest --invariants-report PATH`, to rewrite the matrix too",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from lab.drill import headline as drill_headline
    from lab.exercises import pages as exercise_pages
    from lab.hosts import report as hosts_report
    from lab.sitegen import cli_reference, diffs, matrix

    written = [cli_reference.write_reference(), drill_headline.write_from_committed_results(),
               *hosts_report.write_from_committed_results()]
    for page in written:
        print(f"wrote {page.relative_to(REPO_ROOT)}")
    for name in exercise_pages.write_pages():  # only the lists that changed
        print(f"wrote {(exercise_pages.PAGES_DIR / name).relative_to(REPO_ROOT)}")
    status = diffs.main([])
    if args.report is not None:
        status = status or matrix.main(["--report", str(args.report)])
    return status


if __name__ == "__main__":
    sys.exit(main())
