"""Compare the site as two engines build it: MkDocs with Material (supported) and Zensical, the
successor Material's authors announced. `.ci/run` prints the report and does not fail on it yet.

    python -m lab.sitegen.engines SITE_BY_MKDOCS SITE_BY_ZENSICAL

For every page: is it in both builds, and does each hold the same number of the things the
chapters rely on (headings, code blocks, diagrams, tables, admonitions, tabs, images, links)?
A snippet the engine did not include shows as `--8<--` left in the page.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

# What a page is made of, counted in its HTML: a difference means an engine dropped or broke it.
FEATURES = {
    "headings": re.compile(r"<h[1-3][ >]"),
    "code blocks": re.compile(r"<pre[ >](?![^>]*mermaid)"),
    "diagrams": re.compile(r"class=\"mermaid\""),
    "tables": re.compile(r"<table[ >]"),
    "admonitions": re.compile(r"class=\"admonition[ \"]"),
    "tab sets": re.compile(r"class=\"tabbed-set"),
    "images": re.compile(r"<img[ >]"),
    "links": re.compile(r"<a [^>]*href=\"(?!#|https?:)"),
    "snippets left unincluded": re.compile(r"--8&lt;--|--8<--"),
}


def pages(site: Path) -> dict[str, str]:
    """Each page's path inside the site (`chapters/01-naive/index.html`) and its main content."""
    found = {}
    for path in sorted(site.rglob("*.html")):
        html = path.read_text(errors="replace")
        main = re.search(r"<article[^>]*>(.*)</article>", html, re.S)
        found[path.relative_to(site).as_posix()] = main.group(1) if main else html
    return found


def counts(html: str) -> dict[str, int]:
    return {name: len(pattern.findall(html)) for name, pattern in FEATURES.items()}


def report(mkdocs_site: Path, zensical_site: Path) -> list[str]:
    """The differences, one line each; empty when the two builds hold the same pages and features."""
    ours, theirs = pages(mkdocs_site), pages(zensical_site)
    lines = [f"only built by MkDocs: {name}" for name in sorted(set(ours) - set(theirs))]
    lines += [f"only built by Zensical: {name}" for name in sorted(set(theirs) - set(ours))]
    for name in sorted(set(ours) & set(theirs)):
        mine, other = counts(ours[name]), counts(theirs[name])
        for feature in FEATURES:
            if mine[feature] != other[feature]:
                lines.append(f"{name}: {feature}: MkDocs {mine[feature]}, Zensical {other[feature]}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.sitegen.engines", description=__doc__.split("\n")[0])
    parser.add_argument("mkdocs_site", type=Path)
    parser.add_argument("zensical_site", type=Path)
    args = parser.parse_args(argv)
    both = set(pages(args.mkdocs_site)) & set(pages(args.zensical_site))
    differences = report(args.mkdocs_site, args.zensical_site)
    print(f"{len(both)} pages in both builds; {len(differences)} differences")
    for line in differences:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
