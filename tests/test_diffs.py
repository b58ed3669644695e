"""The stage diffs on the site are the stages as they are now: regenerated and compared."""

from lab.runtime.stages import Stage
from lab.sitegen.diffs import DIFFS_DIR, expected_pages, stage_diff


def test_the_committed_stage_diffs_are_fresh():
    pages = expected_pages()
    assert sorted(pages) == ["01-to-02.md", "02-to-03.md", "03-to-04.md", "04-to-05.md"]
    for name, text in pages.items():
        committed = DIFFS_DIR / name
        assert committed.is_file(), "missing: run `workbook diffs`"
        assert committed.read_text() == text, f"docs/diffs/{name} is stale: run `workbook diffs`"


def test_a_stage_diff_shows_the_lesson():
    diff = stage_diff(Stage.find("01"), Stage.find("02"))
    assert "+++ 02-db-queue/twitpic/claims.py" in diff  # a new file
    assert "-        post_tweet(user[\"twitter_token\"], comment_tweet(body, link))" in diff
    assert "__pycache__" not in diff
    assert stage_diff(Stage.find("01"), Stage.find("01")) == ""
