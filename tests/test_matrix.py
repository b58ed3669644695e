"""The invariants matrix: the plugin records a real run, `workbook matrix` renders and checks it.

The page on the site is written from a full run of every stage's invariants (`make test` writes
the report, CI runs `workbook matrix --check` on it). Here: the rendering from a small hand-made
report, the errors that keep a gap or a red run off the page, `--check` catching a changed cell,
and the plugin writing the report for a throwaway stage run in a pytest subprocess.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lab.runtime.stages import all_stages
from lab.sitegen import matrix
from lab.sitegen.matrix import BREAKS, HOLDS, INVARIANTS, NOT_APPLICABLE, ReportError

FAST, HANG, OUTAGE, TWICE, KILLED, RESTART = INVARIANTS  # the six test names, in the page's order


def report_for(stages: dict[str, dict[str, str]]) -> dict:
    """A report in the plugin's format: every invariant passes, except the ones given as
    {test: reason}, which are strict xfails with that reason."""
    return {
        "stages": {
            stage: {
                test: {"outcome": "xfailed", "reason": broken[test]} if test in broken else {"outcome": "passed"}
                for test in INVARIANTS
            }
            for stage, broken in stages.items()
        }
    }


SMALL = report_for({"01-a": {HANG: "the site hangs - fixed in 02-b", OUTAGE: "lost - fixed in 02-b"}, "02-b": {}})


def table_cells(page: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")]
            for line in page.splitlines() if line.startswith("|")]


def test_rendering_a_small_report():
    cells = matrix.matrix_from_report(SMALL, ["01-a", "02-b"])
    page = matrix.render(cells, ["01-a", "02-b"])

    header, _, *rows = table_cells(page)
    assert header == ["invariant", "`01-a`", "`02-b`"]
    assert [row[0] for row in rows] == list(INVARIANTS.values())
    by_name = {row[0]: row[1:] for row in rows}
    assert by_name[INVARIANTS[FAST]] == [HOLDS, HOLDS]
    assert by_name[INVARIANTS[HANG]] == [f"{BREAKS}[^1]", HOLDS]
    assert by_name[INVARIANTS[OUTAGE]] == [f"{BREAKS}[^2]", HOLDS]
    assert "[^1]: **01-a**: the site hangs - fixed in 02-b" in page.splitlines()
    assert "[^2]: **01-a**: lost - fixed in 02-b" in page.splitlines()
    # The page reads back as the cells it was made from.
    assert matrix.parse_page(page) == (["01-a", "02-b"], cells)


def test_an_invariant_that_does_not_apply_is_shown_with_its_reason():
    report = with_outcome(SMALL, "01-a", RESTART, {"outcome": "skipped", "reason": "does not apply: no queue"})
    cells = matrix.matrix_from_report(report, ["01-a", "02-b"])
    page = matrix.render(cells, ["01-a", "02-b"])

    by_name = {row[0]: row[1:] for row in table_cells(page)[2:]}
    assert by_name[INVARIANTS[RESTART]] == [f"{NOT_APPLICABLE}[^3]", HOLDS]
    assert "[^3]: **01-a**: no queue" in page.splitlines()
    assert matrix.parse_page(page) == (["01-a", "02-b"], cells)


def with_outcome(report: dict, stage: str, test: str, entry: dict | None) -> dict:
    report = json.loads(json.dumps(report))
    if entry is None:
        del report["stages"][stage][test]
    else:
        report["stages"][stage][test] = entry
    return report


@pytest.mark.parametrize(
    "report, complaint",
    [
        (with_outcome(SMALL, "02-b", TWICE, None), f"02-b: {TWICE} is missing"),
        (with_outcome(SMALL, "02-b", TWICE, {"outcome": "failed", "phase": "call"}), "failed in this run"),
        (with_outcome(SMALL, "02-b", TWICE, {"outcome": "skipped"}), "'skipped', not passed or xfailed"),
        (with_outcome(SMALL, "02-b", TWICE, {"outcome": "skipped", "reason": "no server"}), "'skipped'"),
        (with_outcome(SMALL, "02-b", TWICE, {"outcome": "sideways"}), "'sideways'"),
        (with_outcome(SMALL, "02-b", TWICE, {"outcome": "xfailed"}), "without a reason"),
        (with_outcome(SMALL, "02-b", "test_x", {"outcome": "passed"}), "test_x is not one of the invariants"),
        ({"stages": {"01-a": SMALL["stages"]["01-a"]}}, "02-b: no invariant was run"),
        ({"stages": {**SMALL["stages"], "99-z": {}}}, "99-z: not a stage"),
        ({"tests": {}}, "no `stages`"),
    ],
    ids=["missing", "failed", "skipped", "skipped-other-reason", "unknown-outcome", "no-reason", "unknown-test",
         "missing-stage", "extra-stage", "not-a-report"],
)
def test_a_gap_or_a_red_run_is_an_error_not_a_blank_cell(report, complaint):
    with pytest.raises(ReportError, match="cannot make the matrix|no `stages`") as error:
        matrix.matrix_from_report(report, ["01-a", "02-b"])
    assert complaint in str(error.value)


# -- `workbook matrix` and `--check`, on the real stages' names ------------------------------------

STAGES = [stage.name for stage in all_stages()]


@pytest.fixture
def real_shaped(tmp_path) -> tuple[Path, Path]:
    """A report with the workbook's own stages, and the page written from it."""
    report = tmp_path / "invariants.json"
    outcomes = {STAGES[0]: {HANG: "it hangs - fixed later"}, **{s: {} for s in STAGES[1:]}}
    report.write_text(json.dumps(report_for(outcomes)))
    page = tmp_path / "invariants.md"
    assert matrix.main(["--report", str(report), "--page", str(page)]) == 0
    return report, page


def test_check_passes_on_the_page_the_report_wrote(real_shaped, capsys):
    report, page = real_shaped
    assert matrix.main(["--check", "--report", str(report), "--page", str(page)]) == 0
    assert "agrees" in capsys.readouterr().out


def test_check_names_a_cell_the_run_changed(real_shaped, capsys):
    report, page = real_shaped
    changed = json.loads(report.read_text())
    changed["stages"][STAGES[-1]][TWICE] = {"outcome": "xfailed", "reason": "a new race"}
    report.write_text(json.dumps(changed))

    assert matrix.main(["--check", "--report", str(report), "--page", str(page)]) == 1
    err = capsys.readouterr().err
    assert f"{INVARIANTS[TWICE]} / {STAGES[-1]}: the page says {HOLDS}, the run says {BREAKS} (a new race)" in err
    assert err.count(" / ") == 1  # only that cell


def test_check_names_a_cell_edited_by_hand(real_shaped, capsys):
    report, page = real_shaped
    text = page.read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| {INVARIANTS[HANG]} |"))
    page.write_text(text.replace(row, row.replace(f"{BREAKS}[^1]", HOLDS)))

    assert matrix.main(["--check", "--report", str(report), "--page", str(page)]) == 1
    expected = f"{INVARIANTS[HANG]} / {STAGES[0]}: the page says {HOLDS}, the run says {BREAKS} (it hangs"
    assert expected in capsys.readouterr().err


def test_check_notices_a_changed_reason(real_shaped, capsys):
    report, page = real_shaped
    page.write_text(page.read_text().replace("it hangs - fixed later", "something else"))
    assert matrix.main(["--check", "--report", str(report), "--page", str(page)]) == 1
    assert f"the page says {BREAKS} (something else)" in capsys.readouterr().err


def test_the_command_refuses_a_report_with_a_gap(tmp_path):
    report = tmp_path / "invariants.json"
    report.write_text(json.dumps(report_for({STAGES[0]: {}})))  # one stage only
    page = tmp_path / "invariants.md"
    result = subprocess.run(
        [sys.executable, "-m", "lab", "matrix", "--report", str(report), "--page", str(page)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert f"{STAGES[1]}: no invariant was run" in result.stderr
    assert not page.exists()


def test_the_committed_page_is_a_complete_matrix():
    """Every invariant and stage has a cell; whether each is right is CI's `workbook matrix --check`."""
    stages, cells = matrix.parse_page(matrix.PAGE.read_text())
    assert stages == STAGES
    assert set(cells) == {(test, stage) for test in INVARIANTS for stage in STAGES}
    assert all(cell.holds or (cell.reason and cell.reason != "?") for cell in cells.values())


# -- the plugin writes the report ------------------------------------------------------------------

THROWAWAY_INVARIANTS = '''
import pytest

import twitpic
from lab.testing.invariants import does_not_apply


def test_comment_answers_fast_while_twitter_is_slow():
    assert twitpic.FAST


@pytest.mark.xfail(strict=True, reason="it hangs - fixed in never")
def test_site_stays_up_while_twitter_hangs():
    assert twitpic.STAYS_UP


@pytest.mark.xfail(strict=True, reason="it holds after all")
def test_no_tweet_is_lost_during_an_outage():
    assert twitpic.FAST  # passes, so this strict xfail fails the run


@pytest.mark.skip(reason="not today")
def test_no_tweet_is_posted_twice_with_many_workers():
    pass


@pytest.fixture
def broken():
    raise RuntimeError("setup fails")


def test_no_tweet_is_lost_when_a_worker_is_killed(broken):
    pass


@does_not_apply("no queue here")
def test_no_tweet_is_lost_when_the_queue_restarts():
    pass
'''

THROWAWAY_OTHER = '''
def test_not_an_invariant():
    pass
'''


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def run_throwaway_stage(root: Path, package: str, tests: dict[str, str], *options: str):
    """pytest, with the workbook's plugin, over one throwaway stage `steps/07-throwaway` in `root`."""
    stage = root / "steps" / "07-throwaway"
    write(root / "pyproject.toml",
          '[tool.pytest.ini_options]\naddopts = "-rxX --import-mode=importlib -p lab.pytest_plugin"\n')
    write(stage / "twitpic" / "__init__.py", package)
    for name, text in tests.items():
        write(stage / "tests" / name, text)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "steps", *options],
        cwd=root, capture_output=True, text=True, timeout=120,
    )


def test_the_plugin_writes_each_invariants_outcome(tmp_path):
    report = tmp_path / "out" / "invariants.json"
    result = run_throwaway_stage(
        tmp_path,
        "FAST = True\nSTAYS_UP = False\n",
        {"test_invariants.py": THROWAWAY_INVARIANTS, "test_other.py": THROWAWAY_OTHER},
        "--invariants-report", str(report),
    )

    assert result.returncode == 1, result.stdout + result.stderr  # the XPASS(strict) and the error
    outcomes = json.loads(report.read_text())["stages"]
    assert list(outcomes) == ["07-throwaway"]  # test_other.py is not an invariant
    recorded = outcomes["07-throwaway"]
    assert recorded[FAST] == {"outcome": "passed"}
    assert recorded[HANG] == {"outcome": "xfailed", "reason": "it hangs - fixed in never"}
    assert recorded[OUTAGE] == {"outcome": "failed", "phase": "call"}  # XPASS(strict)
    assert recorded[TWICE] == {"outcome": "skipped", "reason": "not today"}
    assert recorded[KILLED] == {"outcome": "failed", "phase": "setup"}
    assert recorded[RESTART] == {"outcome": "skipped", "reason": "does not apply: no queue here"}
    with pytest.raises(ReportError, match="failed in this run"):
        matrix.matrix_from_report({"stages": outcomes}, ["07-throwaway"])


def test_where_skips_fail_the_run_an_invariant_that_does_not_apply_does_not(tmp_path, monkeypatch):
    """With WORKBOOK_NO_SKIPS, a skipped check fails the run; an invariant marked `does_not_apply`
    in a stage's test_invariants.py is not a check skipped, and does not."""
    applies_nowhere = '''
from lab.testing.invariants import does_not_apply


@does_not_apply("no queue here")
def test_no_tweet_is_lost_when_the_queue_restarts():
    pass
'''
    monkeypatch.setenv("WORKBOOK_NO_SKIPS", "1")
    result = run_throwaway_stage(tmp_path / "one", "", {"test_invariants.py": applies_nowhere})
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_throwaway_stage(tmp_path / "two", "", {"test_other.py": applies_nowhere})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped, but WORKBOOK_NO_SKIPS is set" in result.stdout


def test_without_the_option_no_report_is_written(tmp_path):
    result = run_throwaway_stage(tmp_path, "FAST = True\n", {"test_invariants.py": THROWAWAY_OTHER})
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*.json")) == []
