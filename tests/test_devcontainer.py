"""The .devcontainer is the README's install on a Debian image: checked here as far as a machine
with no container engine can (its JSON, its commands, its ports); it is not built here."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTAINER = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text())


def test_it_is_a_debian_image_that_installs_the_workbook_as_the_readme_does():
    assert re.search(r"-(bookworm|trixie)$", CONTAINER["image"]), CONTAINER["image"]
    command = CONTAINER["postCreateCommand"]
    assert command.endswith("&& make install")
    assert "make install" in (ROOT / "README.md").read_text()


def test_it_has_the_tools_the_setup_page_asks_for_and_the_lab_of_hosts_needs():
    setup = (ROOT / "docs" / "setup.md").read_text()
    # "For the explorations by hand": the one apt command that names sqlite3
    asked = next(found.split() for found in re.findall(r"`sudo apt install ([a-z0-9 -]+)`", setup)
                 if "sqlite3" in found)
    installed = CONTAINER["postCreateCommand"].split("--no-install-recommends", 1)[1].split("&&")[0].split()
    assert set(asked) <= set(installed)
    assert {"iproute2", "chromium"} <= set(installed)  # the lab of hosts; the browser check
    # Docker's default seccomp profile refuses the user namespace the lab of hosts makes.
    assert "seccomp=unconfined" in CONTAINER["runArgs"]


def test_it_forwards_the_ports_the_readme_names():
    readme = (ROOT / "README.md").read_text()
    for port in CONTAINER["forwardPorts"]:
        assert f":{port}" in readme, port
    assert set(CONTAINER["forwardPorts"]) == {int(port) for port in CONTAINER["portsAttributes"]}
