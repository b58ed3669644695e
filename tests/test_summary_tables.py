"""A table that tests fill row by row is printed after the run, in one process and under xdist."""

import subprocess
import sys
import textwrap

import pytest

CONFIG = '[tool.pytest.ini_options]\naddopts = "-p lab.pytest_plugin"\n'
TESTS = """
import pytest

@pytest.mark.parametrize("n", [3, 1, 2])
def test_adds_a_row(summary_table, n):
    summary_table("squares, from many tests", ("number", "square")).append((f"n={n}", n * n))
"""


@pytest.mark.parametrize("parallel", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_every_row_is_printed_once_sorted_with_numbers_aligned_right(tmp_path, parallel):
    (tmp_path / "pyproject.toml").write_text(CONFIG)
    (tmp_path / "test_case.py").write_text(textwrap.dedent(TESTS))
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *parallel],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
    after_title = result.stdout.split("squares, from many tests", 1)[1].splitlines()[1:]
    table = [line for line in after_title if line.strip()][:5]
    assert table[:4] == ["number square", "n=1         1", "n=2         4", "n=3         9"]
    assert not table[4].startswith("n="), "a row printed twice"
