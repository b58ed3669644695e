"""The outage drill's report, fed a small hand-made result: the table, the charts, the page."""

import re
from pathlib import Path

import pytest
from rich.console import Console

from lab.drill import plots, report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def stage_summary(**overrides) -> dict:
    summary = {
        "comment_p50_ms_normal": 1510.2, "comment_p99_ms_normal": 1990.0,
        "comment_p50_ms_outage": None, "comment_p99_ms_outage": None,
        "comment_p50_ms_recovery": 1600.0, "comment_p99_ms_recovery": 2100.0,
        "upload_p50_ms_normal": 1530.0,
        "availability_during_outage": 0.12,
        "errors": 230,
        "tweets_expected": 40, "tweets_posted": 31, "tweets_lost": 9, "tweets_duplicated": 0,
        "repeats_refused": 0, "duplicate_posts": 0, "peak_backlog": 4, "drain_seconds": 1.2,
    }
    return {**summary, **overrides}


def sample_results() -> dict:
    naive_requests = [
        {"kind": "view", "start": 0.013, "latency": 0.004, "outcome": "ok"},
        {"kind": "comment", "start": 0.51, "latency": 1.52, "outcome": "ok"},
        {"kind": "upload", "start": 2.0, "latency": 1.53, "outcome": "ok"},
        {"kind": "view", "start": 21.0, "latency": None, "outcome": "timeout"},
        {"kind": "comment", "start": 22.0, "latency": None, "outcome": "timeout"},
        {"kind": "view", "start": 23.0, "latency": 0.002, "outcome": "error"},
        {"kind": "comment", "start": 55.0, "latency": 1.6, "outcome": "ok"},
    ]
    rq_requests = [
        {"kind": "view", "start": 0.02, "latency": 0.003, "outcome": "ok"},
        {"kind": "comment", "start": 0.6, "latency": 0.011, "outcome": "ok"},
        {"kind": "comment", "start": 25.0, "latency": 0.0, "outcome": "ok"},  # a zero on a log axis
        {"kind": "upload", "start": 30.0, "latency": 0.02, "outcome": "ok"},
    ]
    return {
        "scenario": "hang",
        "description": "Twitter answers normally, then hangs (accepts, never answers) for 30 s,"
                       " then recovers",
        "date": "2026-11-27T20:30:00+00:00",
        "cpus": 2,
        "quick": False,
        "time_scale": 1.0,
        "web_workers": 4,
        "phases": [
            {"name": "normal", "start": 0.0, "end": 20.0},
            {"name": "outage", "start": 20.0, "end": 50.0},
            {"name": "recovery", "start": 50.0, "end": 70.0},
        ],
        "stages": {
            "01-naive": {
                "summary": stage_summary(),
                "requests": naive_requests,
                "backlog": [[0.0, 0], [0.5, 1], [21.0, 4], [52.0, 0]],
            },
            "04-rq": {
                "summary": stage_summary(
                    comment_p50_ms_outage=11.4, comment_p99_ms_outage=19.6,
                    availability_during_outage=1.0, errors=0, tweets_posted=40, tweets_lost=0,
                    peak_backlog=17, drain_seconds=None,
                ),
                "requests": rq_requests,
                "backlog": [[0.0, 0], [20.0, 1], [49.0, 17], [60.0, 3]],
            },
        },
    }


def assert_is_png(path: Path) -> None:
    assert path.is_file(), path
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), path
    assert len(data) > 10_000, f"{path} is only {len(data)} bytes: nothing was drawn?"


def table_lines(markdown: str) -> list[list[str]]:
    """The cells of each table row, header and separator included."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in markdown.splitlines() if line.startswith("|")
    ]


def test_every_summary_key_has_a_column_once():
    keys = [key for key, _ in report.SUMMARY_COLUMNS]
    assert sorted(keys) == sorted(stage_summary())
    headers = [header for _, header in report.SUMMARY_COLUMNS]
    assert len(set(headers)) == len(headers)


def test_summary_rows_are_formatted_for_people():
    rows = report.summary_rows(sample_results())
    assert [row[0] for row in rows] == ["01-naive", "04-rq"]
    naive = dict(zip(["stage"] + [key for key, _ in report.SUMMARY_COLUMNS], rows[0], strict=False))
    assert naive["comment_p50_ms_normal"] == "1510"  # milliseconds, no decimals
    assert naive["comment_p50_ms_outage"] == "-"  # None: nothing answered
    assert naive["availability_during_outage"] == "12 %"
    assert naive["errors"] == "230"
    assert (naive["peak_backlog"], naive["drain_seconds"]) == ("n/a", "n/a")  # no queue: nothing to drain
    rq = dict(zip(["stage"] + [key for key, _ in report.SUMMARY_COLUMNS], rows[1], strict=False))
    assert rq["availability_during_outage"] == "100 %"
    assert rq["peak_backlog"] == "17"
    assert rq["drain_seconds"] == "-"


def test_the_markdown_table_has_a_row_per_metric_and_a_column_per_stage():
    lines = table_lines(report.markdown_table(sample_results()))
    header, separator, *rows = lines
    assert header == ["metric", "01-naive", "04-rq"]
    assert len(separator) == 3
    assert [row[0] for row in rows] == [header for _, header in report.SUMMARY_COLUMNS]
    assert all(len(row) == 3 for row in rows)
    by_metric = {row[0]: row[1:] for row in rows}
    assert by_metric["availability during outage"] == ["12 %", "100 %"]
    assert by_metric["comment p50 outage (ms)"] == ["-", "11"]
    assert by_metric["tweets lost"] == ["9", "0"]
    assert by_metric["drain time (s)"] == ["n/a", "-"]  # stage 01 has no queue to drain


def test_the_charts_are_real_pngs(tmp_path):
    results = sample_results()
    plots.plot_latency(results, tmp_path / "latency.png")
    plots.plot_backlog(results, tmp_path / "backlog.png")
    assert_is_png(tmp_path / "latency.png")
    assert_is_png(tmp_path / "backlog.png")


def test_timeouts_are_drawn_above_every_answer():
    results = sample_results()
    assert plots.timeout_level_ms(results) > 1600  # the slowest answer, in milliseconds
    results["client_timeout"] = 5.0
    assert plots.timeout_level_ms(results) == 5000


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The page written once for every page test: drawing the charts is the slow part."""
    root = tmp_path_factory.mktemp("site")
    page = root / "docs" / "results" / "drill.md"
    report.write_results_page(sample_results(), root / "docs" / "results" / "drill", page)
    return page


def test_the_page_shows_the_run_and_the_table(site):
    results = sample_results()
    text = site.read_text()
    assert text.startswith("# The outage drill\n")
    for fact in ("hang", results["description"], "2026-11-27", "2 CPUs", "4 web workers",
                 "full run", "time scale 1"):
        assert fact in text, fact
    assert report.markdown_table(results) in text


def test_the_page_links_both_charts_relative_to_its_folder(site):
    links = re.findall(r"!\[([^\]]+)\]\(([^)]+)\)", site.read_text())
    assert len(links) == 2
    for alt_text, link in links:
        assert alt_text.strip()
        assert not Path(link).is_absolute(), link
        assert "\\" not in link, link  # a web path, whatever the operating system
        assert_is_png(site.parent / link)
    assert sorted(link for _, link in links) == ["drill/backlog.png", "drill/latency.png"]


def test_the_guide_to_the_charts_states_no_number(site):
    assert not re.search(r"\d", report.HOW_TO_READ)
    assert report.HOW_TO_READ in site.read_text()


def test_print_summary_shows_every_stage_side_by_side():
    console = Console(record=True, width=200)
    report.print_summary(sample_results(), console)
    text = console.export_text()
    for expected in ("01-naive", "04-rq", "12 %", "100 %", "availability during outage", "1510"):
        assert expected in text, expected


def test_the_claims_table_reports_duplicate_posts_and_those_on_twitter():
    results = sample_results()
    results["stages"]["04-rq"]["summary"].update(tweets_duplicated=1, repeats_refused=2, duplicate_posts=3)
    row = next(line for line in report.claims_markdown(results).splitlines() if "duplicate tweets" in line)
    assert "01-naive 0 (0)" in row and "04-rq 3 (1)" in row


def test_the_page_says_whether_twitter_refused_repeats():
    results = sample_results()
    results["twitter_refuses_duplicates"] = True
    assert "Twitter refused a repeated status" in report.what_was_run(results)
    results["twitter_refuses_duplicates"] = False
    assert "every repeat shows as a duplicate" in report.what_was_run(results)


def test_the_page_lists_every_scenario_the_drill_knows(tmp_path):
    from lab.drill.scenarios import SCENARIOS

    report.write_results_page(sample_results(), tmp_path, tmp_path / "drill.md")
    page = (tmp_path / "drill.md").read_text()
    for name in SCENARIOS:
        assert f"| `{name}` |" in page


def test_a_quick_run_says_so_above_its_figures_on_the_page_and_in_the_terminal(tmp_path):
    results = sample_results()
    results.update(quick=True, time_scale=0.2)
    report.write_results_page(results, tmp_path, tmp_path / "drill.md")
    page = (tmp_path / "drill.md").read_text()
    assert page.index('!!! warning "A quick run"') < page.index(report.markdown_table(results))
    assert "5 times shorter" in page
    console = Console(record=True, width=200)
    report.print_summary(results, console)
    assert "a quick run: every delay 5 times shorter" in console.export_text()
    assert report.quick_run_warning(sample_results()) == []  # a full run's page has no warning


@pytest.mark.parametrize("extra", [["--quick"], ["--stages", "01-naive"], ["--scenario", "down"]])
def test_only_a_full_run_of_every_stage_can_replace_the_sites_results(extra, capsys, monkeypatch):
    from lab.drill import run

    def must_not_run(*args, **kwargs):
        raise AssertionError("the drill started")

    monkeypatch.setattr(run, "run_drill", must_not_run)
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--publish", *extra])
    assert exit_info.value.code == 2
    assert "--publish writes the site's committed run" in capsys.readouterr().err


def test_the_committed_run_is_a_full_run_of_every_stage():
    """What the site, the home page and the explorable read: never a quick or partial run."""
    import json

    from lab.drill.run import DEFAULT_SCENARIO
    from lab.runtime.stages import all_stages

    committed = json.loads((Path(__file__).resolve().parents[1] / "docs/results/drill/results.json").read_text())
    assert (committed["quick"], committed["time_scale"], committed["scenario"]) == (False, 1.0, DEFAULT_SCENARIO)
    assert list(committed["stages"]) == [stage.name for stage in all_stages()]
