"""Every example the docs include is a real file, and it does what the docs say."""

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_fake_twitter_tour():
    tour = runpy.run_path(str(ROOT / "examples" / "fake_twitter_tour.py"))["tour"]
    result = tour()
    assert result["first answer"] == 201
    assert result["while down"] == 503
    assert result["ledger"] == ["Check out this cool pic.", "Check out this cool pic."]
    assert result["stats"]["accepted"] == 2
    assert result["stats"]["duplicates"] == 1
    assert result["stats"]["rejected"] == {"down": 1}
