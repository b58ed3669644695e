"""Run an exercise's tests in a folder (a workspace or a scratch copy) and say what still fails.

The tests run in a pytest subprocess inside the folder, so the stage's own pytest settings apply
(its pyproject.toml: importlib mode, lab.pytest_plugin with its stage isolation and leak check), in one process,
exactly as when a learner runs `pytest` there. pytest's JUnit XML report says which tests failed
and with what message.

A strict xfail test (an invariant that its stage breaks) checks by failing: its expected failure
(XFAIL) counts as a pass, and the report gives a strict XPASS as a failure, "[XPASS(strict)] reason".
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from lab.exercises.catalog import Exercise

PASSES, FAILS, BROKEN = "passes", "fails", "broken"
PYTEST_HEEDING_CTRL_C = (
    "import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler); sys.exit(pytest.main())"
)
CHECK_TIMEOUT = 300  # seconds; the slowest check takes well under a minute
# A test that fails with one of these never reached its assertions: the code did not even load.
CRASHES = ("ImportError", "ModuleNotFoundError", "SyntaxError", "IndentationError", "NameError")


@dataclass
class TestFailure:
    node_id: str
    message: str  # the first line of the assertion or exception


@dataclass
class CheckResult:
    outcome: str  # PASSES, FAILS (a test failed), BROKEN (nothing ran cleanly: collection, setup, timeout)
    passed: list[str] = field(default_factory=list)  # expected failures included
    expected_failures: list[str] = field(default_factory=list)  # strict xfails that failed, as they must
    failures: list[TestFailure] = field(default_factory=list)
    problem: str = ""  # why it is BROKEN
    output: str = ""  # pytest's own output, for when the summary is not enough


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def run_check(exercise: Exercise, folder: Path) -> CheckResult:
    with tempfile.TemporaryDirectory(prefix="exercise-check-") as scratch:
        report = Path(scratch) / "report.xml"
        # In one process (`-n 0`, not the stage's four workers): a handful of tests, and a Ctrl-C
        # (sent when a check hangs) then reaches the process that runs the fixtures' teardowns.
        # It heeds Ctrl-C even when we were started in the background, where the shell makes
        # SIGINT ignored, for us and everything we start.
        command = [
            sys.executable, "-c", PYTEST_HEEDING_CTRL_C, "-p", "no:cacheprovider", "-q", "-n", "0",
            f"--junitxml={report}", "-o", "junit_family=xunit1", *exercise.tests,
        ]
        pytest = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            output, _ = pytest.communicate(timeout=CHECK_TIMEOUT)
        except subprocess.TimeoutExpired:
            # Ctrl-C, not a kill: pytest then runs the fixtures' teardowns, which stop the servers.
            pytest.send_signal(signal.SIGINT)
            try:
                output, _ = pytest.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                pytest.kill()
                output, _ = pytest.communicate()
            return CheckResult(BROKEN, problem=f"the tests did not finish in {CHECK_TIMEOUT} s", output=output)
        if not report.is_file():
            problem = f"pytest stopped before it ran a test (exit {pytest.returncode})"
            return CheckResult(BROKEN, problem=problem, output=output)
        return _result(ElementTree.parse(report).getroot(), pytest.returncode, output)


def _result(root: ElementTree.Element, returncode: int, output: str) -> CheckResult:
    result = CheckResult(PASSES, output=output)
    failed: dict[str, str] = {}  # node id -> first line of its first failure
    passed, errors, skipped = [], [], []
    for case in root.iter("testcase"):
        node_id = f"{case.get('file') or case.get('classname')}::{case.get('name')}"
        failure, error, skip = case.find("failure"), case.find("error"), case.find("skipped")
        if failure is not None:
            failed.setdefault(node_id, first_line(failure.get("message")))
        elif error is not None and first_line(error.get("message")).startswith("failed on teardown"):
            # An assertion in a fixture after the test (e.g. "nothing was stored"): still a failure.
            failed.setdefault(node_id, first_line(error.get("message")))
        elif error is not None:
            errors.append(TestFailure(node_id, first_line(error.get("message"))))
        elif skip is not None and skip.get("type") == "pytest.xfail":
            # It failed the way its xfail marker expects (the exception named by its `raises`).
            passed.append(node_id)
            result.expected_failures.append(node_id)
        elif skip is not None:
            skipped.append(f"{node_id}: {first_line(skip.get('message'))}")
        else:
            passed.append(node_id)
    # A test reported twice (its call passed, its teardown failed) counts once, as failed.
    result.passed = [node_id for node_id in dict.fromkeys(passed) if node_id not in failed]
    result.expected_failures = [node_id for node_id in result.expected_failures if node_id in result.passed]
    result.failures = [TestFailure(node_id, message) for node_id, message in failed.items()]
    crashed = [failure for failure in result.failures if failure.message.startswith(CRASHES)]
    if errors or crashed:
        # Collecting, setting up or importing crashed: the code never reached the assertions.
        result.failures.extend(errors)
        result.outcome = BROKEN
        result.problem = "the code crashed before the tests' assertions: " + "; ".join(
            f"{error.node_id}: {error.message}" for error in errors + crashed
        )
    elif skipped:
        result.outcome = BROKEN
        result.problem = "skipped: " + "; ".join(skipped)
    elif not result.passed and not result.failures:
        result.outcome = BROKEN
        result.problem = f"no test ran (pytest exit {returncode}): are the exercise's test ids right?"
    elif result.failures:
        result.outcome = FAILS
    elif returncode != 0:
        result.outcome = BROKEN  # every test passed, but the run failed: the leak check, for one
        result.problem = f"the tests passed but pytest exited {returncode}"
    return result
