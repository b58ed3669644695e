"""The outage drill's headline figures, for the home page: a few rows of the published run.

`workbook drill --publish` writes it with the results page; `workbook generate-docs` writes it
again from the committed `docs/results/drill/results.json`, and a test fails when it is stale.
The figures are the drill's own, formatted as on its results page; the prose around them on the
home page states no number.
"""

from __future__ import annotations

import json
from pathlib import Path

from lab.drill import report, verdicts
from lab.runtime.stages import REPO_ROOT

RESULTS = REPO_ROOT / "docs" / "results" / "drill" / "results.json"
PAGE = REPO_ROOT / "docs" / "generated" / "drill-headline.md"

# The figures the case study is about: speed, availability, lost and repeated tweets.
HEADLINE_KEYS = [
    "comment_p50_ms_normal",
    "availability_during_outage",
    "tweets_lost",
    "duplicate_posts",  # on Twitter, or refused by it as repeats
    "tweets_duplicated",
]


def headline_markdown(results: dict) -> str:
    stages = list(results["stages"])
    summaries = [results["stages"][stage].get("summary", {}) for stage in stages]
    headers = dict(report.SUMMARY_COLUMNS)
    keys = [key for key in HEADLINE_KEYS if any(key in summary for summary in summaries)]
    run = "a quick run" if results.get("quick") else "a full run"
    lines = [
        f"Scenario **{results['scenario']}**: {results['description']}. "
        f"Run {report.readable_date(results['date'])}, {run}, "
        f"{results['web_workers']} web workers per stage.",
        "",
        "| figure | " + " | ".join(f"`{stage}`" for stage in stages) + " |",
        "|---|" + "--:|" * len(stages),
    ]
    for key in keys:
        values = [report.format_value(key, summary.get(key)) for summary in summaries]
        lines.append(f"| {headers.get(key, key)} | " + " | ".join(values) + " |")
    if all("runs" in results["stages"][stage] for stage in stages):
        # The words of the results page's last row and of the terminal's: one vocabulary.
        cells = " | ".join(verdicts.promise_summary(stage, results["stages"][stage]["runs"]) for stage in stages)
        lines.append(f"| {verdicts.SUMMARY_ROW} | {cells} |")
    return "\n".join(lines) + "\n"


def write_headline(results: dict, page: Path = PAGE) -> Path:
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(headline_markdown(results))
    return page


def write_from_committed_results(results: Path = RESULTS, page: Path = PAGE) -> Path:
    return write_headline(json.loads(results.read_text()), page)
