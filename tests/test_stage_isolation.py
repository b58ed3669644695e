"""One pytest session over several stages, each of which has its own package named `twitpic`.

Two throwaway stages are built in a temporary folder, each with a different `twitpic`; pytest runs
over both in one process, in both orders, and every test checks that it saw its own stage's code:
imported at module level, inside a fixture, and lazily while the test runs. A control run without
the plugin proves the check can fail.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN_ADDOPTS = "-rxX --import-mode=importlib -p lab.pytest_plugin"

STAGE_TEST = '''
import os
from pathlib import Path

import twitpic  # imported while pytest collects this file

HERE = Path(__file__).resolve().parents[1]


def record(what):
    with open(os.environ["STAGE_LOG"], "a") as log:
        log.write(f"{HERE.name} {os.getpid()} {what}\\n")


def test_module_level_import_sees_its_stage():
    record("module")
    assert twitpic.STAGE == HERE.name


def test_fixture_import_sees_its_stage(app):
    record("fixture")
    assert app.STAGE == HERE.name


def test_lazy_import_at_run_time_sees_its_stage():
    record("lazy")
    from twitpic.identity import stage
    assert stage() == HERE.name


def test_the_package_comes_from_its_own_folder():
    import twitpic as package
    assert Path(package.__file__).resolve().parent == HERE / "twitpic"
'''

STAGE_CONFTEST = '''
import pytest


@pytest.fixture
def app():
    import twitpic  # inside the fixture, as the stages' conftests do
    return twitpic
'''


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def build_project(root: Path, *, plugin: bool = True) -> Path:
    addopts = PLUGIN_ADDOPTS if plugin else "-rxX --import-mode=importlib"
    # Without the plugin, the obvious setup puts both stages on the path: the first one wins.
    pythonpath = "" if plugin else 'pythonpath = ["steps/a", "steps/b"]'
    write(
        root / "pyproject.toml",
        f'[tool.pytest.ini_options]\ntestpaths = ["steps"]\naddopts = "{addopts}"\n{pythonpath}\n',
    )
    for name in ("a", "b"):
        stage = root / "steps" / name
        write(
            stage / "pyproject.toml",
            f'[tool.pytest.ini_options]\npythonpath = ["."]\naddopts = "{addopts}"\n',
        )
        write(stage / "twitpic" / "__init__.py", f"STAGE = {name!r}\n")
        write(stage / "twitpic" / "whoami.py", f"NAME = {name!r}\n")
        write(
            stage / "twitpic" / "identity.py",
            "def stage():\n    from twitpic import whoami  # looked up at run time\n    return whoami.NAME\n",
        )
        write(stage / "tests" / "conftest.py", STAGE_CONFTEST)
        write(stage / "tests" / "test_app.py", STAGE_TEST)
    return root


def run_pytest(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    log = root / "stage.log"
    log.unlink(missing_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd or root,
        env={**__import__("os").environ, "STAGE_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def log_lines(root: Path) -> list[tuple[str, str, str]]:
    return [tuple(line.split()) for line in (root / "stage.log").read_text().splitlines()]


@pytest.mark.parametrize("order", [("steps/a", "steps/b"), ("steps/b", "steps/a")], ids=["a-then-b", "b-then-a"])
def test_each_stage_runs_its_own_code_in_one_session(tmp_path, order):
    root = build_project(tmp_path)
    result = run_pytest(root, *order)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 passed" in result.stdout
    lines = log_lines(root)
    assert {stage for stage, _, _ in lines} == {"a", "b"}
    assert len({pid for _, pid, _ in lines}) == 1, "both stages must run in one pytest process"
    # The tests ran in the order given, so the second stage's code was active while the first
    # stage's tests ran: only the plugin's switching makes them pass.
    assert lines[0][0] == order[0][-1]


def test_a_pytest_xdist_worker_keeps_the_stages_apart_too(tmp_path):
    """One xdist worker runs both stages' tests, so it must switch between them as one process does."""
    root = build_project(tmp_path)
    result = run_pytest(root, "-n", "1", "steps/a", "steps/b")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 passed" in result.stdout
    lines = log_lines(root)
    assert {stage for stage, _, _ in lines} == {"a", "b"}
    assert len({pid for _, pid, _ in lines}) == 1, "one worker ran every test"


def test_the_root_run_collects_every_stage(tmp_path):
    root = build_project(tmp_path)
    result = run_pytest(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 passed" in result.stdout


def test_one_stage_runs_from_the_root_and_from_inside_its_folder(tmp_path):
    root = build_project(tmp_path)
    from_root = run_pytest(root, "steps/b")
    from_inside = run_pytest(root, cwd=root / "steps" / "b")

    for result in (from_root, from_inside):
        assert result.returncode == 0, result.stdout + result.stderr
        assert "4 passed" in result.stdout
    assert {stage for stage, _, _ in log_lines(root)} == {"b"}


def test_without_the_plugin_a_stage_runs_the_other_stages_code(tmp_path):
    """The control: the check above can fail, and does, when nothing keeps the stages apart."""
    root = build_project(tmp_path, plugin=False)
    result = run_pytest(root, "steps/a", "steps/b")

    assert result.returncode == 1
    assert "assert 'a' == 'b'" in result.stdout
    assert "4 failed, 4 passed" in result.stdout
