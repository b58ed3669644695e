"""The GitHub Pages workflow cannot run here; what can be checked is that it would build this site
the way `make docs-build` does and publish it where `site_url` says."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "pages.yml"


def workflow() -> dict:
    loaded = yaml.safe_load(WORKFLOW.read_text())
    loaded["on"] = loaded.pop(True)  # YAML 1.1 reads the key `on` as true
    return loaded


def steps(job: dict) -> list[dict]:
    return job["steps"]


def uses(job: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in steps(job) if "uses" in step]


def test_it_builds_on_main_with_the_permissions_pages_needs():
    flow = workflow()
    assert flow["on"]["push"]["branches"] == ["main"]
    assert flow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    assert set(flow["jobs"]) == {"build", "deploy"}
    assert flow["jobs"]["deploy"]["needs"] == "build"
    assert flow["jobs"]["deploy"]["environment"]["name"] == "github-pages"


def test_it_uses_githubs_own_actions_pinned_to_a_major_version():
    flow = workflow()
    assert uses(flow["jobs"]["build"]) == [
        "actions/checkout", "actions/setup-python", "actions/configure-pages", "actions/upload-pages-artifact",
    ]
    assert uses(flow["jobs"]["deploy"]) == ["actions/deploy-pages"]
    for job in flow["jobs"].values():
        for step in steps(job):
            if "uses" in step:
                assert step["uses"].split("@")[1].startswith("v"), step["uses"]


def test_it_builds_with_make_and_uploads_the_folder_mkdocs_writes():
    build = workflow()["jobs"]["build"]
    [make] = [step for step in steps(build) if "run" in step]
    assert make["run"] == "make docs-build"
    assert "mkdocs build --strict" in (ROOT / "Makefile").read_text()
    [upload] = [step for step in steps(build) if step.get("uses", "").startswith("actions/upload-pages-artifact")]
    mkdocs = (ROOT / "mkdocs.yml").read_text()
    assert "site_dir" not in mkdocs and upload["with"]["path"] == "site"  # mkdocs' default folder


def test_site_url_comes_from_the_pages_address():
    build = workflow()["jobs"]["build"]
    [make] = [step for step in steps(build) if "run" in step]
    assert make["env"]["SITE_URL"] == "${{ steps.pages.outputs.base_url }}/"
    assert 'site_url: !ENV [SITE_URL, "http://127.0.0.1:8001/"]' in (ROOT / "mkdocs.yml").read_text()
