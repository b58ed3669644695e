"""The environment holds the versions the workbook was tested with: those in the lock.

`make` installs from uv.lock with uv, or from requirements.lock (the same versions, exported from
uv.lock, with hashes) with pip; `.ci/run` checks that both locks agree with pyproject.toml.
"""

import os
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# Installed by the tools themselves, not by the lock: pip into a venv, and the workbook itself.
NOT_LOCKED = {"pip", "setuptools", "wheel", "twitpic-workbook"}
LOCK_LINE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^ ;\\]+)\s*(?:;(?P<marker>[^\\]+))?")


def locked_here() -> dict[str, str]:
    """requirements.lock's packages whose markers hold on this machine: name -> version."""
    locked = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = LOCK_LINE.match(line)
        if match and (match["marker"] is None or Marker(match["marker"].strip()).evaluate()):
            locked[canonicalize_name(match["name"])] = match["version"]
    return locked


def installed() -> dict[str, str]:
    return {canonicalize_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}


def test_every_locked_package_is_installed_at_its_locked_version():
    have = installed()
    wrong = {name: (version, have.get(name))
             for name, version in locked_here().items() if have.get(name) != version}
    assert not wrong, f"locked -> installed: {wrong}; run `make clean install` to install the lock"


def test_nothing_is_installed_that_the_lock_does_not_list():
    """In CI an extra package would mean the tests ran on more than the lock holds. On a learner's
    machine, a package they added to .venv is their business."""
    if not (os.environ.get("CI") or os.environ.get("WORKBOOK_NO_SKIPS")):
        pytest.skip("only checked in CI: packages you add to .venv are yours")
    extra = sorted(set(installed()) - set(locked_here()) - NOT_LOCKED)
    assert not extra, f"installed but not in the lock: {extra}"


def test_the_two_locks_hold_the_same_versions():
    """requirements.lock is uv.lock exported: the same version of every package."""
    uv_lock = tomllib.loads((ROOT / "uv.lock").read_text())
    in_uv = {(canonicalize_name(package["name"]), package["version"]) for package in uv_lock["package"]
             if package["name"] != "twitpic-workbook"}
    in_requirements = {(canonicalize_name(match["name"]), match["version"])
                       for line in (ROOT / "requirements.lock").read_text().splitlines()
                       if (match := LOCK_LINE.match(line))}
    assert in_requirements == in_uv
