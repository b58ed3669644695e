"""The stages in steps/, their Procfiles, and how the lab starts their processes.

A stage's Procfile is the truth about what it runs: `workbook up` and the stage's tests start
the same lines, each through `sh -c "exec <line>"` in the stage's folder, as foreman and honcho do.
Its `release` line is a one-off command, not a process: it runs to its end before the others start,
as Heroku's release phase does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lab.runtime.process import LOCALHOST, ManagedProcess, ProcessError
from lab.runtime.timescale import ENV_VAR, parse_time_scale, story_settings, time_scale

REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS_DIR = REPO_ROOT / "steps"

RELEASE = "release"  # the Procfile's one-off command, run before the processes start

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

    def procfile(self) -> dict[str, str]:
        return parse_procfile((self.path / "Procfile").read_text())

    def processes(self) -> dict[str, str]:
        """The Procfile's long-running processes: every line but `release`."""
        return {name: command for name, command in self.procfile().items() if name != RELEASE}

    def release(self, *, env: Mapping[str, str], log_path: str | os.PathLike | None = None,
                timeout: float = 60) -> None:
        """Run the Procfile's `release` line, if any, to its end; raise ProcessError if it fails."""
        command = self.procfile().get(RELEASE)
        if command is None:
            return
        result = subprocess.run(
            ["sh", "-c", f"exec {command}"], cwd=self.path, env={**os.environ, **self.environment(env)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
        )
        if log_path is not None:
            Path(log_path).write_text(result.stdout)
        if result.returncode != 0:
            raise ProcessError(
                f"{self.name}:{RELEASE} (`{command}`) exited with code {result.returncode}:\n{result.stdout}"
            )

    @staticmethod
    def environment(env: Mapping[str, str]) -> dict[str, str]:
        # The workbook's own commands (gunicorn, flask, workbook, rq...) come from the running
        # Python's environment, whether or not it is activated.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        # The story's durations at the time scale, unless the caller or the shell set one.
        scale = parse_time_scale(env[ENV_VAR]) if env.get(ENV_VAR) else time_scale()
        story = {name: value for name, value in story_settings(scale).items() if name not in os.environ}
        return {"PATH": path, **story, **env}

    def process(
        self,
        name: str,
        *,
        env: Mapping[str, str],
        host: str = LOCALHOST,
        port: int | None = None,
        ready: Callable[[], bool] | None = None,
        log_path: str | os.PathLike | None = None,
        instance: str | None = None,
    ) -> ManagedProcess:
        """The Procfile's `name` line as a process, not started yet. `instance` names one of
        several copies of the line (`worker.2`)."""
        processes = self.processes()
        if name not in processes:
            raise StageError(f"{self.name}'s Procfile has no {name!r} process")
        return ManagedProcess(
            f"{self.name}:{instance or name}",
            ["sh", "-c", f"exec {processes[name]}"],
            cwd=self.path,
            env=self.environment(env),
            host=host,
            port=port,
            ready=ready,
            log_path=log_path,
        )


def all_stages() -> list[Stage]:
    if not STEPS_DIR.is_dir():
        return []
    return [Stage(path) for path in sorted(STEPS_DIR.iterdir()) if (path / "Procfile").is_file()]
