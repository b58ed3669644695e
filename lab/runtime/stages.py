"""The stages in steps/, their Procfiles, and how the lab starts their processes.

A stage's Procfile is the truth about what it runs: `workbook up` and the stage's tests start
the same lines, each through `sh -c "exec <line>"` in the stage's folder, as foreman and honcho do.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lab.runtime.process import LOCALHOST, ManagedProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS_DIR = REPO_ROOT / "steps"

_PROCFILE_LINE = re.compile(r"^(?P<name>[A-Za-z0-9_-]+):\s*(?P<command>\S.*)$")


class StageError(ValueError):
    pass


def parse_procfile(text: str) -> dict[str, str]:
    """`name: command` lines, in order; blank lines and `#` comments are skipped."""
    processes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _PROCFILE_LINE.match(line)
        if match is None:
            raise StageError(f"Procfile line {number} is not `name: command`: {line!r}")
        if match["name"] in processes:
            raise StageError(f"Procfile line {number} repeats the process {match['name']!r}")
        processes[match["name"]] = match["command"]
    return processes


@dataclass(frozen=True)
class Stage:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def find(cls, name: str) -> "Stage":
        """A stage by its folder name (`01-naive`) or its number (`01`, `1`)."""
        stages = all_stages()
        for stage in stages:
            if name in (stage.name, stage.name.split("-", 1)[0], stage.name.split("-", 1)[0].lstrip("0")):
                return stage
        known = ", ".join(stage.name for stage in stages) or "none yet"
        raise StageError(f"no stage {name!r} in {STEPS_DIR} (stages: {known})")

    def processes(self) -> dict[str, str]:
        return parse_procfile((self.path / "Procfile").read_text())

    def process(
        self,
        name: str,
        *,
        env: Mapping[str, str],
        host: str = LOCALHOST,
        port: int | None = None,
        ready: Callable[[], bool] | None = None,
        log_path: str | os.PathLike | None = None,
    ) -> ManagedProcess:
        """The Procfile's `name` line as a process, not started yet."""
        processes = self.processes()
        if name not in processes:
            raise StageError(f"{self.name}'s Procfile has no {name!r} process")
        # The workbook's own commands (gunicorn, workbook, rq...) come from the running Python's
        # environment, whether or not it is activated.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        return ManagedProcess(
            f"{self.name}:{name}",
            ["sh", "-c", f"exec {processes[name]}"],
            cwd=self.path,
            env={"PATH": path, **env},
            host=host,
            port=port,
            ready=ready,
            log_path=log_path,
        )


def all_stages() -> list[Stage]:
    if not STEPS_DIR.is_dir():
        return []
    return [Stage(path) for path in sorted(STEPS_DIR.iterdir()) if (path / "Procfile").is_file()]
