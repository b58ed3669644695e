"""The site builds with `mkdocs build --strict`, and the strict build really catches mistakes."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = [sys.executable, "-m", "mkdocs", "build", "--strict"]


def build(project: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MKDOCS, "--site-dir", str(site)],
        cwd=project,
        env={"NO_MKDOCS_2_WARNING": "1", **__import__("os").environ},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_site_builds_strictly(tmp_path):
    result = build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    page = (tmp_path / "site" / "reference" / "twitter" / "index.html").read_text()
    assert "ROUTES" in page  # the route table came in from lab/twitter/server.py


@pytest.fixture
def site_copy(tmp_path):
    """A copy of the site's sources, to break on purpose."""
    for name in ("mkdocs.yml", "docs", "chapters", "lab", "examples", "steps"):
        source = ROOT / name
        target = tmp_path / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "data"))
        else:
            shutil.copy(source, target)
    return tmp_path


@pytest.mark.parametrize(
    "page, complaint",
    [
        ('--8<-- "lab/no_such_file.py"\n', "no_such_file.py"),
        ('--8<-- "lab/twitter/server.py:no_such_section"\n', "no_such_section"),
        ("[a broken link](no-such-page.md)\n", "no-such-page.md"),
        ("[a broken anchor](setup.md#no-such-heading)\n", "no-such-heading"),
    ],
    ids=["missing-file", "missing-section", "broken-link", "broken-anchor"],
)
def test_the_strict_build_fails_on_a_broken_include_or_link(site_copy, page, complaint):
    (site_copy / "docs" / "broken.md").write_text(f"# Broken\n\n{page}")
    text = (site_copy / "mkdocs.yml").read_text().replace(
        "  - Setup: setup.md\n", "  - Setup: setup.md\n  - Broken: broken.md\n"
    )
    (site_copy / "mkdocs.yml").write_text(text)

    result = build(site_copy, site_copy / "site")

    assert result.returncode != 0
    assert complaint in result.stderr


def test_every_chapter_is_shown_through_a_wrapper_page_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for chapter in sorted((ROOT / "chapters").glob("*.md")):
        wrapper = ROOT / "docs" / "chapters" / chapter.name
        assert wrapper.read_text().strip() == f'--8<-- "chapters/{chapter.name}"'
        assert f"chapters/{chapter.name}" in nav


def test_the_twitter_reference_covers_every_route_and_option():
    from lab.cli import build_parser
    from lab.twitter.server import ROUTES

    reference = (ROOT / "docs" / "reference" / "twitter.md").read_text()
    # The route table itself is included from the code; each route is also explained in prose.
    for method, path in ROUTES:
        if path != "/":
            assert f"`{path}`" in reference or f"`{method} {path}`" in reference, path
    twitter = build_parser()._subparsers._group_actions[0].choices["twitter"]
    for action in twitter._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                assert option in reference, option
    from lab.twitter.state import MODES

    for mode in MODES:
        assert re.search(rf"^\| `{mode}` \|", reference, re.M), mode
