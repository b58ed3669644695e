"""The lab's shape: a few modules at its root, packages that say what they hold, no module too long
to read, and a README layout section that names what is there."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "lab"
MOST_ROOT_MODULES = 5
MOST_LINES = 400


def lab_modules() -> list[Path]:
    return sorted(LAB.rglob("*.py"))


def test_the_lab_root_holds_few_modules():
    modules = sorted(path.name for path in LAB.glob("*.py"))
    assert len(modules) <= MOST_ROOT_MODULES, modules


def test_every_lab_package_says_in_one_line_what_lives_there():
    for init in sorted(LAB.rglob("__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring, f"{init.relative_to(ROOT)} has no docstring"
        assert docstring.splitlines()[0].rstrip().endswith((".", ":")), (
            f"{init.relative_to(ROOT)}: the first line should be one whole sentence")


def test_no_module_is_too_long_to_read():
    long = {str(path.relative_to(ROOT)): n for path in lab_modules()
            if (n := len(path.read_text().splitlines())) > MOST_LINES}
    assert long == {}, f"over {MOST_LINES} lines: {long}"


def readme_layout() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def test_the_readme_layout_names_every_lab_package_and_root_module():
    """The lines indented under `lab/` name its packages (`drill/`) and root modules (`cli.py`)."""
    layout = readme_layout()
    lab_block = layout.split("\nlab/", 1)[1].split("\n")[1:]
    named = set()
    for line in lab_block:
        if not line.startswith(" "):
            break  # the next top-level entry
        if re.match(r"^ {2}\S", line):  # an entry, not the continuation of one's description
            named.add(line.split()[0])
    named.discard("")
    there = {f"{path.parent.name}/" for path in LAB.glob("*/__init__.py")}
    there |= {path.name for path in LAB.glob("*.py")} - {"__init__.py", "__main__.py"}
    assert named == there, f"missing from the README: {sorted(there - named)}; not there: {sorted(named - there)}"
