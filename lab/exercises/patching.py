"""Starter patches: made with difflib from an edited copy, applied exactly or not at all.

No fuzz and no offsets: if the stage changed under a patch, applying it fails and says where,
so `workbook exercise verify` notices before a learner gets a half-broken starter.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(ValueError):
    pass


def make_patch(original: Path, edited: Path, files: list[str]) -> str:
    """The unified diff from `original` to `edited` for the given files (paths inside both)."""
    chunks = []
    for name in sorted(files):
        before = (original / name).read_text().splitlines(keepends=True)
        after = (edited / name).read_text().splitlines(keepends=True)
        chunks.extend(difflib.unified_diff(before, after, fromfile=f"a/{name}", tofile=f"b/{name}"))
    return "".join(line if line.endswith("\n") else line + "\n" for line in chunks)


def patched_files(patch: str) -> list[str]:
    """The files a patch changes, by their path inside the stage."""
    return [line[len("+++ b/"):].rstrip("\n") for line in patch.splitlines() if line.startswith("+++ b/")]


def _file_patches(patch: str) -> list[tuple[str, list[str]]]:
    files: list[tuple[str, list[str]]] = []
    for line in patch.splitlines(keepends=True):
        if line.startswith("--- "):
            continue
        if line.startswith("+++ b/"):
            files.append((line[len("+++ b/"):].rstrip("\n"), []))
        elif files:
            files[-1][1].append(line)
        elif line.strip():
            raise PatchError(f"not a unified diff: {line.rstrip()!r}")
    return files


def _apply_hunks(name: str, lines: list[str], body: list[str]) -> list[str]:
    result: list[str] = []
    position = 0  # next unread line of the original
    index = 0
    while index < len(body):
        header = _HUNK.match(body[index])
        if header is None:
            raise PatchError(f"{name}: expected a hunk header, found {body[index].rstrip()!r}")
        start = int(header[1]) - (0 if header[2] == "0" else 1)
        result.extend(lines[position:start])
        position = start
        index += 1
        while index < len(body) and not body[index].startswith("@@"):
            kind, text = body[index][:1], body[index][1:]
            if kind in (" ", "-"):
                if position >= len(lines) or lines[position] != text:
                    found = lines[position].rstrip("\n") if position < len(lines) else "the end of the file"
                    raise PatchError(
                        f"{name} line {position + 1}: expected {text.rstrip()!r}, found {found!r}"
                    )
                position += 1
            if kind in (" ", "+"):
                result.append(text)
            index += 1
    return result + lines[position:]


def apply_patch(patch: str, root: Path) -> list[str]:
    """Apply a patch made by `make_patch` to the files under `root`; the files it changed."""
    changes = {}
    for name, body in _file_patches(patch):
        path = root / name
        if not path.is_file():
            raise PatchError(f"{name}: no such file")
        changes[path] = _apply_hunks(name, path.read_text().splitlines(keepends=True), body)
    for path, lines in changes.items():  # all hunks matched: only now write anything
        path.write_text("".join(lines))
    return [name for name, _ in _file_patches(patch)]
