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


def test_the_kestrel_tour_output_in_the_docs_is_fresh():
    """docs/generated/kestrel-tour.txt is what examples/kestrel_tour.py prints today."""
    import subprocess
    import sys

    fresh = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "kestrel_tour.py")],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    committed = (ROOT / "docs" / "generated" / "kestrel-tour.txt").read_text()
    assert fresh == committed, "stale: run python examples/kestrel_tour.py > docs/generated/kestrel-tour.txt"
    assert "REMOVE_TENTATIVE xid=1" in fresh and "UNREMOVE xid=2" in fresh


def test_the_netcat_command_in_the_kestrel_tour_sends_the_bytes_it_shows():
    tour = runpy.run_path(str(ROOT / "examples" / "kestrel_tour.py"))
    printf_argument = tour["NETCAT_COMMAND"].split("'")[1]
    assert printf_argument.encode().decode("unicode_escape").encode() == tour["NETCAT_BYTES"]
