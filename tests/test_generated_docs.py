"""The generated docs pages are fresh: the CLI reference and the drill's headline figures.

Each is regenerated here and compared with the committed file; `workbook generate-docs` rewrites
both (and the stage diffs). The invariants matrix has its own tests (test_matrix.py) because it
needs a test run's report.
"""

import argparse
import json

from lab.cli import build_parser
from lab.drill import headline as drill_headline
from lab.drill import report
from lab.sitegen import cli_reference

STALE = "is stale: run `workbook generate-docs` and commit the result"


def test_the_lab_of_hosts_pages_show_the_committed_run():
    from lab.hosts import report as hosts_report

    committed = json.loads(hosts_report.RESULTS.read_text())
    texts = hosts_report.console_texts(committed)
    for name, text in texts.items():
        assert hosts_report.console_path(name).read_text() == text, f"hosts-{name}.txt {STALE}"
    assert hosts_report.PAGE.read_text() == hosts_report.page_text(committed), f"results/hosts.md {STALE}"
    # The committed set is whole: every scenario and every defence in it, on both stages, each with its picture.
    expected = [(name, hosts_report.defences_text(on, off), stage)
                for name, on, off in hosts_report.PUBLISHED for stage in hosts_report.STAGES]
    assert [(r["scenario"], r["defences"], r["stage"]) for r in committed] == expected
    for name in texts:
        assert (hosts_report.IMAGES / f"{name}.png").is_file(), name
        if name != "scale-out":  # a fault's run host by host, too
            assert (hosts_report.IMAGES / f"{name}-hosts.png").is_file(), name


def test_the_committed_cli_reference_is_fresh():
    assert cli_reference.PAGE.is_file(), f"missing: {cli_reference.PAGE.name} {STALE}"
    assert cli_reference.PAGE.read_text() == cli_reference.reference_markdown(), f"docs/generated/cli.md {STALE}"


def test_the_cli_reference_shows_every_command_and_option():
    page = cli_reference.reference_markdown()
    commands = cli_reference.command_parsers()
    top_level = cli_reference.subcommands(build_parser())
    assert {f"workbook {name}" for name in top_level} <= set(commands)
    assert {"workbook bench kestrel", "workbook bench db-queue"} <= set(commands)
    for command, parser in commands.items():
        assert f"## `{command}`\n" in page, command
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in page or f", {option}" in page, f"{command} {option}"


def test_a_forwarded_command_shows_its_own_parser():
    """`workbook bench kestrel` builds its parser inside main(): it is caught there, nothing runs."""
    parser = cli_reference.module_parser("lab.bench.kestrel")
    assert parser.prog == "workbook bench kestrel"
    assert "--quick" in parser._option_string_actions
    assert cli_reference.command_parsers()["workbook drill"].prog == "workbook drill"


def test_a_forwarding_command_with_no_known_module_is_an_error(monkeypatch):
    def with_a_stranger():
        parser = build_parser()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        stranger = commands.add_parser("stranger", add_help=False, prefix_chars="\0")
        stranger.add_argument("args", nargs=argparse.REMAINDER)
        return parser

    monkeypatch.setattr(cli_reference, "build_parser", with_a_stranger)
    try:
        cli_reference.command_parsers()
    except RuntimeError as error:
        assert "workbook stranger" in str(error)
    else:
        raise AssertionError("a forwarding command with no module was rendered without its options")


def test_table_cells_escape_outside_code_only():
    assert cli_reference.cell("what `echo stats | nc` shows") == "what `echo stats | nc` shows"
    assert cli_reference.cell("a | b <stage>") == "a \\| b &lt;stage&gt;"


def test_the_committed_drill_headline_is_fresh():
    results = json.loads(drill_headline.RESULTS.read_text())
    assert drill_headline.PAGE.is_file(), f"missing: {drill_headline.PAGE.name} {STALE}"
    assert drill_headline.PAGE.read_text() == drill_headline.headline_markdown(results), (
        f"docs/generated/drill-headline.md {STALE}"
    )


def summary(**values) -> dict:
    """A run from before the drill counted duplicate posts: no such key."""
    base = {key: 0 for key, _ in report.SUMMARY_COLUMNS}
    base.pop("duplicate_posts", None)
    return {**base, **values}


def test_the_headline_shows_the_runs_figures_stage_by_stage():
    results = {
        "scenario": "hang",
        "description": "Twitter hangs for a while",
        "date": "2026-11-27T20:24:18+00:00",
        "quick": True,
        "web_workers": 4,
        "stages": {
            "01-naive": {"summary": summary(
                comment_p50_ms_normal=1585.4, availability_during_outage=0.0266, tweets_lost=4)},
            "04-rq": {"summary": summary(comment_p50_ms_normal=16.2, availability_during_outage=1.0)},
        },
    }
    text = drill_headline.headline_markdown(results)
    assert "Scenario **hang**: Twitter hangs for a while. Run 2026-11-27 20:24 UTC, a quick run" in text
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]
    assert rows[0] == ["figure", "`01-naive`", "`04-rq`"]
    by_figure = {row[0]: row[1:] for row in rows[2:]}
    assert by_figure["comment p50 normal (ms)"] == ["1585", "16"]
    assert by_figure["availability during outage"] == ["3 %", "100 %"]
    assert by_figure["tweets lost"] == ["4", "0"]
    duplicate_posts = dict(report.SUMMARY_COLUMNS)["duplicate_posts"]
    assert duplicate_posts not in text  # this run did not record it
    assert "the promises it makes" not in text  # nor verdicts

    results["stages"]["04-rq"]["summary"]["duplicate_posts"] = 2
    for name, held in (("01-naive", True), ("04-rq", False)):
        results["stages"][name]["runs"] = [{"held": held, "promises": {}}]
    by_figure = {
        row[0]: row[1:]
        for row in ([c.strip() for c in line.strip("|").split("|")]
                    for line in drill_headline.headline_markdown(results).splitlines() if line.startswith("| "))
    }
    assert by_figure[duplicate_posts] == ["-", "2"]
    assert by_figure["the promises it makes"] == ["kept the 1 it makes; breaks 2 on purpose",
                                                  "BROKE one it makes, in 1 of 1 run"]
