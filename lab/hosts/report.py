"""The lab of hosts' committed run, as the site shows it: `docs/results/hosts-failover.json`, the
result of `workbook hosts --scenario failover --quick --out ...`, printed as the command prints it.

`workbook generate-docs` writes `docs/generated/hosts-failover.txt` from it, and a test fails when
that file is stale, so the chapter's figures are always those of the committed run.
"""

from __future__ import annotations

import json
from pathlib import Path

from lab.hosts.scenarios import verdict_lines
from lab.runtime.stages import REPO_ROOT

RESULTS = REPO_ROOT / "docs" / "results" / "hosts-failover.json"
PAGE = REPO_ROOT / "docs" / "generated" / "hosts-failover.txt"
COMMAND = "$ workbook hosts --scenario failover --quick"


def console_text(results: list[dict]) -> str:
    lines = [COMMAND]
    for result in results:
        lines += verdict_lines(result)
    return "\n".join(lines) + "\n"


def write_from_committed_results() -> Path:
    PAGE.write_text(console_text(json.loads(RESULTS.read_text())))
    return PAGE
