"""The suite fails if a test leaves a process running; CI fails if a required test skips.

Each case runs pytest on a throwaway test file in a subprocess, with the workbook's plugin: in one
process, and with pytest-xdist's two workers (`-n 2`), where each worker checks its own processes.
"""

import os
import subprocess
import sys
import textwrap

import psutil
import pytest

CONFIG = '[tool.pytest.ini_options]\naddopts = "-p lab.pytest_plugin"\n'


@pytest.fixture(params=[[], ["-n", "2"]], ids=["one process", "xdist"])
def run_pytest(request, tmp_path):
    """`run_pytest(source, env)`: pytest on a test file with that source, in a subprocess."""

    def run(test_source, env=None):
        (tmp_path / "pyproject.toml").write_text(CONFIG)
        (tmp_path / "test_case.py").write_text(textwrap.dedent(test_source))
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *request.param, "test_case.py"],
            cwd=tmp_path,
            env={**os.environ, "PIDFILE": str(tmp_path / "pid"), **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def leaked_pid(tmp_path) -> int:
    return int((tmp_path / "pid").read_text())


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_leaked_child_process_fails_the_run_and_is_killed(run_pytest, tmp_path):
    result = run_pytest(
        """
        import os, subprocess
        def test_forgets_to_stop_its_server():
            child = subprocess.Popen(["sleep", "600"])
            open(os.environ["PIDFILE"], "w").write(str(child.pid))
        """,
    )
    assert result.returncode == 1, result.stdout
    assert "1 passed" in result.stdout  # the test itself passed: the leak check failed the run
    assert "leaked process" in result.stdout and "sleep 600" in result.stdout
    assert gone(leaked_pid(tmp_path))


def test_a_daemon_that_double_forked_away_is_still_caught(run_pytest, tmp_path):
    # `sh -c "sleep 600 &"` exits at once; its child is orphaned and would normally go to init.
    result = run_pytest(
        """
        import os, subprocess
        def test_starts_a_daemon():
            out = subprocess.run(["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"],
                                 capture_output=True, text=True)
            open(os.environ["PIDFILE"], "w").write(out.stdout.strip())
        """,
    )
    assert result.returncode == 1, result.stdout
    assert "leaked process" in result.stdout
    assert gone(leaked_pid(tmp_path))


def test_a_test_that_stops_what_it_starts_passes(run_pytest):
    result = run_pytest(
        """
        import subprocess
        def test_cleans_up():
            child = subprocess.Popen(["sleep", "600"])
            child.terminate()
            child.wait()
        """,
    )
    assert result.returncode == 0, result.stdout
    assert "leaked process" not in result.stdout


SKIPPING_TEST = """
import pytest
def test_needs_a_database():
    pytest.skip("PostgreSQL is not reachable")
"""


def test_a_skip_is_fine_on_a_laptop(run_pytest):
    result = run_pytest(SKIPPING_TEST, env={"WORKBOOK_NO_SKIPS": ""})
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout


def test_a_skip_fails_the_run_where_every_check_is_required(run_pytest):
    result = run_pytest(SKIPPING_TEST, env={"WORKBOOK_NO_SKIPS": "1"})
    assert result.returncode == 1, result.stdout
    assert "test_needs_a_database" in result.stdout
    assert "PostgreSQL is not reachable" in result.stdout
