"""The report that compares the site built by MkDocs with the site built by Zensical."""

from lab.sitegen.engines import report

PAGE = ('<html><article><h1>Title</h1><pre><code>x = 1</code></pre>'
        '<div class="mermaid">graph</div></article></html>')


def site(root, pages: dict[str, str]):
    for name, html in pages.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(html)
    return root


def test_the_same_pages_with_the_same_parts_report_nothing(tmp_path):
    ours = site(tmp_path / "mkdocs", {"index.html": PAGE, "chapters/01/index.html": PAGE})
    theirs = site(tmp_path / "zensical", {"index.html": PAGE, "chapters/01/index.html": PAGE})
    assert report(ours, theirs) == []


def test_a_missing_page_a_lost_diagram_and_an_unincluded_snippet_are_reported(tmp_path):
    ours = site(tmp_path / "mkdocs", {"index.html": PAGE, "setup/index.html": PAGE})
    broken = PAGE.replace('<div class="mermaid">graph</div>', "<p>--8&lt;-- \"lab/x.py\"</p>")
    theirs = site(tmp_path / "zensical", {"index.html": broken})
    assert report(ours, theirs) == [
        "only built by MkDocs: setup/index.html",
        "index.html: diagrams: MkDocs 1, Zensical 0",
        "index.html: snippets left unincluded: MkDocs 0, Zensical 1",
    ]
