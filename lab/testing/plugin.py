"""The workbook's pytest plugin: one session over every stage, and no leaked processes.

Registered as `-p lab.pytest_plugin` (a shim that loads this module) in the root's and every
stage's pytest configuration.

1. Stage isolation. Every stage has an app package with the same name, `twitpic`. Python caches
   imported modules by name, so without help stage 02's tests would silently run stage 01's code.
   Before a stage's file is collected and before each of its tests runs, this plugin makes that
   stage active: its folder first on `sys.path` and its own `twitpic*` modules in `sys.modules`
   (stashed and restored, never imported twice), the previous stage's modules put aside.
2. Leak check. Every process the suite starts must be stopped by the suite. At the end of the
   session any process still descended from pytest is reported, killed, and the run fails. On Linux
   pytest becomes a "child subreaper", so even a daemon that double-forked away is still counted.
   Under pytest-xdist (`-n`), each worker checks its own processes and the controller reports.
3. Strict skips. With WORKBOOK_NO_SKIPS=1 (CI sets it), a skipped test fails the run: a check that
   CI requires must run, not quietly skip.
4. Invariants report. With `--invariants-report PATH`, the outcome of every test in a stage's
   `tests/test_invariants.py` (passed, xfailed with its reason, failed, skipped) is written to PATH
   as JSON at the end of the run; `workbook matrix` turns it into the site's invariants matrix.
5. Summary tables. A test adds rows to a table with the `summary_table` fixture; each table is
   printed at the end of the run. The rows travel in the test's report, so that under pytest-xdist
   the controller, which prints, has them all.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from lab.testing.invariants import DOES_NOT_APPLY

APP_PACKAGE = "twitpic"
NO_SKIPS_ENV = "WORKBOOK_NO_SKIPS"

# --------------------------------------------------------------------------------------------
# 1. Stage isolation
# --------------------------------------------------------------------------------------------


def stage_root(path: Path) -> Path | None:
    """The stage folder holding `path`: the nearest ancestor with a `twitpic` package in it."""
    path = Path(path).resolve()
    for folder in [path, *path.parents] if path.is_dir() else path.parents:
        if (folder / APP_PACKAGE / "__init__.py").is_file():
            return folder
    return None


def _is_app_module(name: str) -> bool:
    return name == APP_PACKAGE or name.startswith(APP_PACKAGE + ".")


class StageSwitcher:
    def __init__(self) -> None:
        self.active: Path | None = None
        self.stashed: dict[Path, dict[str, object]] = {}

    def activate(self, stage: Path | None) -> None:
        if stage is None or stage == self.active:
            return
        # Put the current stage's modules aside, whichever stage imported them.
        leaving = {name: mod for name, mod in sys.modules.items() if _is_app_module(name)}
        for name in leaving:
            del sys.modules[name]
        if self.active is not None:
            self.stashed[self.active] = leaving
            sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != self.active]
        sys.path.insert(0, str(stage))
        sys.modules.update(self.stashed.pop(stage, {}))
        self.active = stage


switcher = StageSwitcher()


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    # Collecting a stage's test module imports it: module-level `import twitpic` must see its stage.
    path = getattr(collector, "path", None)
    if path is not None:
        switcher.activate(stage_root(path))
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    # Setup, call and teardown of a stage's test, including imports done lazily at run time.
    switcher.activate(stage_root(item.path))
    return (yield)


# --------------------------------------------------------------------------------------------
# 2. Leak check
# --------------------------------------------------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    """Orphaned descendants get re-parented to us instead of to init (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def living_descendants() -> list[psutil.Process]:
    """This process's descendants that still run: none gone, none a zombie waiting to be reaped."""
    living = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                living.append(child)
        except psutil.NoSuchProcess:
            pass
    return living


def command_lines(pid: int) -> list[str]:
    """The command lines of a process's descendants now. One may end while they are read (an RQ
    work horse when its job is done), and an ended one not yet reaped has none: both are skipped."""
    lines = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            lines.append(" ".join(child.cmdline()))
        except psutil.NoSuchProcess:  # gone, or a zombie (psutil.ZombieProcess is one)
            continue
    return lines


def _reap_zombies() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config):
    _become_subreaper()
    config.stash[_problems_key] = []
    config.stash[_worker_pids_key] = set()
    config.pluginmanager.register(SummaryTables(), "workbook-summary-tables")
    report = config.getoption(REPORT_OPTION)
    if report and not _is_xdist_worker(config):  # under pytest-xdist, the controller sees every report
        recorder = InvariantsRecorder(Path(report).absolute(), config.rootpath)
        config.pluginmanager.register(recorder, "workbook-invariants")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist, in the controller: a worker has finished, with its own leak check's findings."""
    output = getattr(node, "workeroutput", {})
    node.config.stash[_worker_pids_key].add(output.get(WORKER_PID, -1))
    node.config.stash[_problems_key].extend(output.get(WORKER_PROBLEMS, []))


def _leaked_processes(config) -> list[str]:
    """Kill and name every process still running below this one. Under pytest-xdist each worker
    checks its own; the controller skips the workers themselves, which are about to exit."""
    workers = config.stash[_worker_pids_key]

    def leaked_now() -> list[psutil.Process]:
        return [p for p in living_descendants() if p.pid not in workers and not _below(p, workers)]

    # A process that got SIGTERM a moment ago may still be on its way out.
    deadline = time.monotonic() + 2.0
    leaked = leaked_now()
    while leaked and time.monotonic() < deadline:
        time.sleep(0.05)
        leaked = leaked_now()
    problems = []
    for process in leaked:
        try:
            problems.append(f"leaked process {process.pid}: {' '.join(process.cmdline())[:200]}")
            process.kill()
        except psutil.NoSuchProcess:
            pass
    _reap_zombies()
    return problems


def _below(process: psutil.Process, pids: set[int]) -> bool:
    try:
        return any(parent.pid in pids for parent in process.parents())
    except psutil.NoSuchProcess:
        return False


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    config = session.config
    problems = config.stash[_problems_key]
    problems.extend(_leaked_processes(config))
    if _is_xdist_worker(config):  # the controller reports for it
        config.workeroutput[WORKER_PID] = os.getpid()
        config.workeroutput[WORKER_PROBLEMS] = problems
        return
    if NO_SKIPS_ENV in os.environ and os.environ[NO_SKIPS_ENV] not in ("", "0"):
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        for report in (reporter.stats.get("skipped", []) if reporter else []):
            reason = skip_reason(report)
            in_invariants = report.nodeid.split("::")[0].endswith(INVARIANTS_FILE)
            inapplicable = in_invariants and reason.startswith(DOES_NOT_APPLY)
            if not inapplicable:  # an invariant the stage has nothing for is not a check skipped
                problems.append(f"skipped, but {NO_SKIPS_ENV} is set: {report.nodeid}: {reason}")
    if problems and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def skip_reason(report) -> str:
    reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason.removeprefix("Skipped: ")


_problems_key = pytest.StashKey[list]()
_worker_pids_key = pytest.StashKey[set]()
WORKER_PID, WORKER_PROBLEMS = "workbook_pid", "workbook_problems"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    problems = config.stash.get(_problems_key, [])
    if problems and not _is_xdist_worker(config):
        terminalreporter.section("workbook checks failed", sep="=", red=True, bold=True)
        for line in problems:
            terminalreporter.write_line(line, red=True)


# --------------------------------------------------------------------------------------------
# 4. Invariants report
# --------------------------------------------------------------------------------------------

INVARIANTS_FILE = "test_invariants.py"
REPORT_OPTION = "--invariants-report"


def pytest_addoption(parser):
    parser.addoption(
        REPORT_OPTION,
        metavar="PATH",
        help="write each stage's invariant outcomes (passed, xfailed with its reason...) to PATH as JSON",
    )


class InvariantsRecorder:
    """A plugin object, registered only when the option is given: one outcome per invariant test,
    from pytest's reports of its setup, call and teardown, written out when the session ends."""

    def __init__(self, path: Path, rootpath: Path) -> None:
        self.path = path
        self.rootpath = rootpath  # node ids are relative to it
        self.outcomes: dict[str, dict[str, dict]] = {}  # stage -> test name -> outcome

    def pytest_runtest_logreport(self, report) -> None:
        path = self.rootpath / report.nodeid.split("::")[0]
        stage = stage_root(path)
        if path.name != INVARIANTS_FILE or stage is None:
            return
        test = report.nodeid.split("::")[-1]
        entry = self.outcomes.setdefault(stage.name, {}).setdefault(test, {"outcome": None})
        if entry["outcome"] == "failed":
            return  # a failure in any phase is the test's outcome
        if report.failed:
            # A strict xfail that passed is reported as a failure: "[XPASS(strict)] <reason>".
            entry.update(outcome="failed", phase=report.when)
        elif hasattr(report, "wasxfail"):
            entry.update(outcome="xfailed", reason=report.wasxfail)
        elif report.skipped:
            entry.update(outcome="skipped", reason=skip_reason(report))
        elif report.when == "call":
            entry.update(outcome="passed")

    def pytest_sessionfinish(self, session) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stages = {stage: dict(sorted(tests.items())) for stage, tests in sorted(self.outcomes.items())}
        self.path.write_text(json.dumps({"stages": stages}, indent=1) + "\n")


# --------------------------------------------------------------------------------------------
# 5. Summary tables
# --------------------------------------------------------------------------------------------

SUMMARY_ROW = "workbook summary row"  # the user_properties key of one row: (title, columns, cells)


class SummaryTable:
    def __init__(self, node, title: str, columns: tuple[str, ...]) -> None:
        self.node, self.title, self.columns = node, title, tuple(columns)

    def append(self, cells) -> None:
        self.node.user_properties.append((SUMMARY_ROW, (self.title, self.columns, tuple(cells))))


@pytest.fixture
def summary_table(request):
    """`summary_table(title, columns).append(cells)`: a row for a table printed after the run."""
    return lambda title, columns: SummaryTable(request.node, title, columns)


class SummaryTables:
    """A plugin object: every row the tests' reports carry, printed as tables after the run."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, tuple[str, ...]], list[tuple]] = {}

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call":
            for key, value in report.user_properties:
                if key == SUMMARY_ROW:
                    title, columns, cells = value
                    self.tables.setdefault((title, tuple(columns)), []).append(tuple(cells))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for (title, columns), rows in self.tables.items():
            terminalreporter.section(title)
            for line in table_lines(columns, rows):
                terminalreporter.write_line(line)


def table_lines(columns: tuple[str, ...], rows: list[tuple]) -> list[str]:
    """Text left-aligned, numbers right-aligned, each column as wide as its widest cell."""
    cells = [columns, *[tuple(str(cell) for cell in row) for row in sorted(rows)]]
    widths = [max(len(line[column]) for line in cells) for column in range(len(columns))]
    numeric = [all(isinstance(row[column], (int, float)) for row in rows) for column in range(len(columns))]
    return [" ".join(cell.rjust(width) if right else cell.ljust(width)
                     for cell, width, right in zip(line, widths, numeric, strict=True)).rstrip()
            for line in cells]
