"""The drill's verdicts: each stage's promises read from its own strict xfails, the IDs that broke
one, and a drill that exits non-zero only when a stage breaks a promise it makes."""

import json

from rich.console import Console

from lab.drill import run, verdicts
from lab.runtime.stages import Stage


def posted(**counts) -> dict[str, list]:
    """`comment_3=2` -> the text of the load's 3rd comment, posted twice."""
    return {
        f"drill label {name.replace('_', ' ')}": [{"id": str(n)} for n in range(count)]
        for name, count in counts.items()
    }


def test_each_stage_is_known_to_break_exactly_its_strict_xfails():
    stages = ("01-naive", "02-db-queue", "03-kestrel", "04-rq", "05-outbox")
    broken = {stage: set(verdicts.known_broken(Stage.find(stage))) for stage in stages}
    assert broken == {
        "01-naive": {
            "test_comment_answers_fast_while_twitter_is_slow",
            "test_site_stays_up_while_twitter_hangs",
            "test_no_tweet_is_lost_during_an_outage",
            "test_no_tweet_is_lost_when_a_worker_is_killed",
        },
        "02-db-queue": {"test_no_tweet_is_posted_twice_with_many_workers"},
        "03-kestrel": {"test_no_tweet_is_lost_when_the_queue_restarts"},
        "04-rq": {"test_no_tweet_is_lost_when_the_queue_restarts"},
        "05-outbox": set(),
    }
    assert "fixed in 03-kestrel" in verdicts.known_broken(Stage.find("02-db-queue"))[
        "test_no_tweet_is_posted_twice_with_many_workers"
    ]


def test_a_stage_that_loses_a_tweet_it_promised_breaks_with_the_ids():
    verdict = verdicts.verdict(
        Stage.find("04-rq"), {"availability_during_outage": 1.0},
        posted(comment_1=1, comment_12=0, comment_3=0, upload_2=2),
    )
    promises = verdict["promises"]
    assert promises["lost none"] == {"verdict": "broken", "count": 2, "ids": ["comment 3", "comment 12"]}
    assert promises["posted none twice"] == {"verdict": "broken", "count": 1, "ids": ["upload 2"]}
    assert promises["available"] == {"verdict": "holds"}
    assert verdict["held"] is False
    assert verdicts.describe(promises["lost none"]) == "broken: comment 3, comment 12 (2)"


def test_a_stage_that_breaks_what_it_is_known_to_break_still_holds_its_promises():
    verdict = verdicts.verdict(
        Stage.find("01-naive"), {"availability_during_outage": 0.03}, posted(comment_1=1, comment_2=0)
    )
    promises = verdict["promises"]
    assert promises["lost none"]["verdict"] == "broken (known)"
    assert "fixed in 02-db-queue" in promises["lost none"]["known_broken"]
    assert promises["available"]["verdict"] == "broken (known)"
    assert promises["available"]["ids"] == ["3.0%"]
    assert promises["posted none twice"]["verdict"] == "holds"  # stage 01 promises this one
    assert verdict["held"] is True
    # Shown as broken on purpose, with the stage that fixes it; and the one it makes, as kept.
    assert verdicts.describe(promises["lost none"], "01-naive", "lost none") == (
        "broken on purpose, fixed in 02-db-queue: comment 2 (1)")
    assert verdicts.describe(promises["available"], "01-naive", "available") == (
        "broken on purpose, fixed in 02-db-queue: 3.0% of page views answered within a second")
    assert verdicts.promise_summary("01-naive", [verdict]) == "kept the 1 it makes; breaks 2 on purpose"


def test_a_promise_broken_on_purpose_never_reads_as_held_even_when_this_run_did_not_break_it():
    summary = {"availability_during_outage": 1.0, "repeats_refused": 10}
    verdict = verdicts.verdict(Stage.find("02-db-queue"), summary, posted(comment_1=1))
    entry = verdict["promises"]["posted none twice"]
    assert verdicts.describe(entry, "02-db-queue", "posted none twice") == (
        "broken on purpose, fixed in 03-kestrel; not seen in this run (Twitter refused 10 repeats)")
    rows = {row[0]: row[1] for row in verdicts.rows(fake_results("02-db-queue", [verdict, verdict]))}
    assert not rows["posted none twice"].startswith("holds")
    assert rows["the promises it makes"] == "kept the 2 it makes in 2 of 2 runs; breaks 1 on purpose"


def test_a_repeat_twitter_refused_is_no_second_tweet_but_is_shown():
    summary = {"availability_during_outage": 1.0, "repeats_refused": 7}
    verdict = verdicts.verdict(Stage.find("04-rq"), summary, posted(comment_1=1))
    entry = verdict["promises"]["posted none twice"]
    assert entry["verdict"] == "holds"
    assert verdicts.describe(entry, "04-rq", "posted none twice") == "holds (Twitter refused 7 repeats)"
    twice = verdicts.verdict(Stage.find("02-db-queue"), summary, posted(comment_1=2))
    assert verdicts.describe(twice["promises"]["posted none twice"], "02-db-queue", "posted none twice") == (
        "broken on purpose, fixed in 03-kestrel: comment 1 (1, Twitter refused 7 repeats)"
    )


def test_a_loss_the_scenario_explains_is_known_and_any_other_loss_is_not():
    why = "made while the queue server was down"
    excused = {"drill label comment 2": why}
    summary = {"availability_during_outage": 1.0}
    explained = verdicts.verdict(Stage.find("03-kestrel"), summary, posted(comment_1=1, comment_2=0), excused)
    assert explained["promises"]["lost none"] == {
        "verdict": "broken (known)", "count": 1, "ids": ["comment 2"], "known_broken": why,
    }
    assert explained["held"] is True
    assert verdicts.describe(explained["promises"]["lost none"], "03-kestrel", "lost none") == (
        "broken as the scenario explains (made while the queue server was down): comment 2 (1)")
    also_other = verdicts.verdict(Stage.find("03-kestrel"), summary, posted(comment_1=0, comment_2=0), excused)
    assert also_other["promises"]["lost none"] == {"verdict": "broken", "count": 1, "ids": ["comment 1"]}
    assert also_other["held"] is False


def fake_results(stage: str, verdict_runs: list[dict]) -> dict:
    return {"stages": {stage: {"summary": {}, "runs": verdict_runs, "verdict": verdict_runs[-1]}}}


def test_several_runs_are_counted_and_each_broken_run_named():
    held = verdicts.verdict(Stage.find("04-rq"), {"availability_during_outage": 1.0}, posted(comment_1=1))
    lost = verdicts.verdict(Stage.find("04-rq"), {"availability_during_outage": 1.0}, posted(comment_1=0))
    rows = {row[0]: row[1] for row in verdicts.rows(fake_results("04-rq", [held, lost, held]))}
    assert rows["lost none"] == "run 1: holds; run 2: broken: comment 1 (1); run 3: holds"
    assert rows["posted none twice"] == "holds in 3 of 3 runs"
    assert rows["the promises it makes"] == "BROKE one it makes, in 1 of 3 runs"


def test_the_drill_exits_non_zero_only_when_a_stage_breaks_a_promise_it_makes(tmp_path, monkeypatch):
    def drill_that_measured(outcomes):
        def fake_run_drill(stages, scenario, scale, quick, console, refuse_duplicates, runs, live_feed=None):
            return {
                "scenario": scenario.name, "description": scenario.description,
                "date": "2026-12-01T00:00:00+00:00",
                "cpus": 2, "quick": quick, "time_scale": scale, "web_workers": 4, "phases": [],
                "stages": {
                    name: {"summary": {"availability_during_outage": 1.0}, "requests": [], "backlog": [],
                           "verdict": verdict, "runs": [verdict]}
                    for name, verdict in outcomes.items()
                },
            }
        return fake_run_drill

    naive_lost = verdicts.verdict(Stage.find("01-naive"), {"availability_during_outage": 0.0}, posted(comment_1=0))
    rq_lost = verdicts.verdict(Stage.find("04-rq"), {"availability_during_outage": 1.0}, posted(comment_1=0))
    rq_held = verdicts.verdict(Stage.find("04-rq"), {"availability_during_outage": 1.0}, posted(comment_1=1))
    monkeypatch.setattr(run.report, "write_results_page", lambda *args: None)
    monkeypatch.setattr(run, "Console", lambda: Console(record=True, width=200))

    monkeypatch.setattr(run, "run_drill", drill_that_measured({"01-naive": naive_lost, "04-rq": rq_held}))
    assert run.main(["--stages", "01-naive,04-rq", "--out", str(tmp_path)]) == 0
    monkeypatch.setattr(run, "run_drill", drill_that_measured({"01-naive": naive_lost, "04-rq": rq_lost}))
    assert run.main(["--stages", "01-naive,04-rq", "--out", str(tmp_path)]) == 1
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["stages"]["04-rq"]["runs"][0]["promises"]["lost none"]["ids"] == ["comment 1"]


def test_the_results_page_the_home_page_and_the_terminal_agree_on_every_promise():
    """The committed run's verdicts, in the same words wherever they appear."""
    from lab.drill import headline

    results = json.loads(headline.RESULTS.read_text())
    page = (headline.RESULTS.parent.parent / "drill.md").read_text()
    home = headline.PAGE.read_text()
    console = Console(record=True, width=2000)
    verdicts.print_verdicts(results, console)
    terminal = console.export_text()
    table = verdicts.rows(results)
    for promise, *cells in table:
        assert f"| {promise} | " + " | ".join(cells) + " |" in page, promise
        assert all(cell in terminal for cell in cells), promise
    summary = table[-1]
    assert summary[0] == verdicts.SUMMARY_ROW
    assert f"| {summary[0]} | " + " | ".join(summary[1:]) + " |" in home
    # A promise a stage breaks on purpose never reads as kept.
    for stage in results["stages"]:
        for promise in verdicts.PROMISES:
            if promise not in verdicts.promises_made(stage):
                shown = table[list(verdicts.PROMISES).index(promise)][list(results["stages"]).index(stage) + 1]
                assert shown.startswith("broken on purpose"), (stage, promise, shown)
