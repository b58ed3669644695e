"""Every shell command the docs show is one that works here.

The commands are taken from the console, bash and sh code blocks of README.md, docs/ and
chapters/ (`$ ` prompt lines, with their `\\` continuations). Each simple command in them (split
at `&&`, `|`, `;`...) must be real:

- `workbook ...` parses with the workbook's parsers, down to a forwarded command's own options
  (parsed only, never run);
- `make X` names a target of the Makefile;
- `pytest PATH...` names paths that exist;
- `python -m X` names a module that imports;
- anything else is on ALLOWED below, a short list of commands from outside the workbook.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.cli import build_parser
from lab.sitegen.cli_reference import command_parsers

ROOT = Path(__file__).resolve().parents[1]
SHELL_FENCES = {"console", "bash", "sh", "shell", "shell-session"}

# Commands from outside the workbook that the docs may show, by their first word (or two).
ALLOWED = {
    "cd", "source", "export",  # the shell's own
    "for", "done",  # `for ...; do ...; done` loops
    "git clone",
    "uv sync",  # the lock's environment, with uv (Setup)
    "sudo apt install", "sudo apt-get install", "brew install",  # system packages (Setup)
    "docker run",  # throwaway database servers for stage 02's tests (Setup)
    "curl", "printf", "nc", "echo",  # talking to the fake Twitter and the queue server by hand
    "touch",  # make's stamp after an offline install (Before you come)
}
SHELL_KEYWORDS = {"do", "then", "else"}  # they start a command: the word after them is the command
SEPARATORS = {";", "&", "&&", "|", "||"}


@dataclass(frozen=True)
class Shown:
    """One command line shown in the docs, and where."""

    source: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.text}"


def doc_files() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
        *sorted((ROOT / "chapters").glob("*.md")),
    ]


_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")


def shell_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of every console/bash/sh fenced block, dedented.

    A fence closes only on a fence of the same character at least as long, so a `````diff page
    that quotes ```console blocks is one diff block, not shell.
    """
    blocks, lines = [], text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        language = opening["info"].lstrip(".{").split("}")[0].lower()
        body, index = [], index + 1
        start = index + 1
        while index < len(lines):
            stripped = lines[index].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            body.append(lines[index][indent:])
            index += 1
        index += 1
        if language in SHELL_FENCES:
            blocks.append((start, body))
    return blocks


def commands_in_block(lines: list[str], language: str = "console") -> list[tuple[int, str]]:
    """The commands of a block: its `$ ` lines, joined with their continuation lines."""
    commands, current, first = [], None, 0
    for offset, line in enumerate(lines):
        if current is not None:
            current += " " + line.strip()
        elif line.startswith("$ "):
            current, first = line[2:].strip(), offset
        else:
            continue
        if current.endswith("\\"):
            current = current[:-1].rstrip()
        else:
            commands.append((first, current))
            current = None
    if current is not None:
        commands.append((first, current))
    return commands


def shown_commands() -> list[Shown]:
    shown = []
    for path in doc_files():
        for start, lines in shell_blocks(path.read_text()):
            for offset, text in commands_in_block(lines):
                shown.append(Shown(path.relative_to(ROOT).as_posix(), start + offset, text))
    return shown


# `<the workbook's repository>`: a part the reader fills in, one word whatever it holds.
_PLACEHOLDER = re.compile(r"<[^<>\s][^<>]*>")


def simple_commands(text: str) -> list[list[str]]:
    """The words of each simple command in a command line, without environment assignments."""
    lexer = shlex.shlex(_PLACEHOLDER.sub("PLACEHOLDER", text), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True  # words as the shell splits them: `--workers`, `a/b.py`
    commands, words = [], []
    for token in lexer:
        if token in SEPARATORS:
            commands.append(words)
            words = []
        else:
            words.append(token)
    commands.append(words)
    cleaned = []
    for words in commands:
        while words and (words[0] in SHELL_KEYWORDS or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0])):
            words = words[1:]
        if words:
            cleaned.append(words)
    return cleaned


# -- the checks -----------------------------------------------------------------------------------


def parse_only(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """None if argparse accepts argv, else its complaint. `--help` counts as accepted."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            parser.parse_args(argv)
        except SystemExit as exit:
            if exit.code not in (0, None):
                return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "rejected"
    return None


def check_workbook(argv: list[str]) -> str | None:
    top = build_parser()
    problem = parse_only(top, argv)
    if problem or "--help" in argv or "-h" in argv:
        return problem
    args = top.parse_args(argv)
    parsers = command_parsers()
    nested = f"workbook {args.command}"
    rest = getattr(args, "args", None)
    if args.command == "bench":
        nested += f" {args.benchmark}"
    if rest is not None and nested in parsers:
        return parse_only(parsers[nested], rest)
    return None


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", text, re.M))


def check_make(argv: list[str]) -> str | None:
    targets = [word for word in argv if not word.startswith("-") and "=" not in word]
    unknown = [target for target in targets if target not in makefile_targets()]
    return f"no Makefile target {unknown}" if unknown else None


OPTIONS_WITH_VALUES = {"-k", "-m", "-p", "-o", "-c", "--rootdir", "--invariants-report"}


def check_pytest(argv: list[str], cwd: Path) -> str | None:
    paths, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word in OPTIONS_WITH_VALUES:
            skip = True
        elif not word.startswith("-"):
            paths.append(word.split("::")[0])
    missing = [path for path in paths if not (cwd / path).exists()]
    return f"no such path {missing}" if missing else None


def check_python(argv: list[str]) -> str | None:
    if len(argv) >= 2 and argv[0] == "-m":
        return None if importlib.util.find_spec(argv[1]) else f"no module {argv[1]}"
    return f"python {' '.join(argv)}: only `python -m MODULE` is checked; show that form"


def check_command_line(text: str) -> list[str]:
    """Every problem with one command line, or [] if each of its commands is real."""
    problems, cwd = [], ROOT
    try:
        commands = simple_commands(text)
    except ValueError as error:  # an unclosed quote: the shell would not run it either
        return [f"{text}: {error}"]
    for words in commands:
        name, rest = words[0], words[1:]
        if name == "uv" and rest[:1] == ["run"] and len(rest) > 1:
            name, rest = rest[1], rest[2:]  # `uv run pytest ...` runs pytest in uv's environment
        if name.startswith(".venv/bin/"):
            name = name.removeprefix(".venv/bin/")  # the workbook's environment, not activated
        if name == "workbook":
            problem = check_workbook(rest)
        elif name == "make":
            problem = check_make(rest)
        elif name == "pytest":
            problem = check_pytest(rest, cwd)
        elif name in ("python", "python3"):
            problem = check_python(rest)
        elif name in ALLOWED or " ".join(words[:2]) in ALLOWED or " ".join(words[:3]) in ALLOWED:
            problem = None
        else:
            problem = f"`{name}` is neither a workbook command nor on the allow-list"
        if name == "cd" and rest and (cwd / rest[0]).is_dir():
            cwd = cwd / rest[0]  # `cd steps/01-naive && pytest` runs pytest there
        if problem:
            problems.append(f"{' '.join(words)}: {problem}")
    return problems


# -- the tests -------------------------------------------------------------------------------------


SHOWN = shown_commands()


def test_the_docs_show_commands_to_check():
    sources = {shown.source for shown in SHOWN}
    assert {"README.md", "docs/setup.md", "docs/index.md"} <= sources, sources
    assert any(shown.text.startswith("workbook ") for shown in SHOWN)
    assert not any("diffs/" in shown.source for shown in SHOWN), "diff pages quote commands, not show them"


@pytest.mark.parametrize("shown", SHOWN, ids=lambda shown: f"{shown.source}:{shown.line}")
def test_every_command_shown_is_real(shown):
    assert check_command_line(shown.text) == [], str(shown)


@pytest.mark.parametrize(
    "command_line, complaint",
    [
        ("workbook frobnicate", "invalid choice"),
        ("workbook up", "required"),
        ("workbook bench kestrel --quickly", "unrecognized arguments"),
        ("workbook drill --scenario sideways", "invalid choice"),
        ("workbook kestrel --no-such-option", "unrecognized arguments"),
        ("make no-such-target", "no Makefile target"),
        ("pytest steps/99-nowhere", "no such path"),
        ("cd steps && pytest 01-naive/no_such_test.py", "no such path"),
        ("python -m lab.no_such_module", "no module"),
        ("rm -rf build", "allow-list"),
        ("uv run pytest steps/99-nowhere", "no such path"),
        ("uv pip install flask", "allow-list"),
        ("curl -s http://127.0.0.1:8000/ | frobnicate", "allow-list"),
        ("echo 'unclosed", "No closing quotation"),
    ],
)
def test_a_wrong_command_is_caught(command_line, complaint):
    problems = check_command_line(command_line)
    assert len(problems) == 1 and complaint in problems[0], problems


@pytest.mark.parametrize(
    "command_line",
    [
        "workbook --time-scale 0.1 twitter",
        "workbook bench db-queue --quick",
        "WORKER_COUNT=4 workbook up 02-db-queue",
        "cd steps/01-naive && pytest tests/test_invariants.py",
        "python -m lab --help",
        "make test PYTHON=python3.12",
        "git clone <the workbook's repository> twitpic-workbook",
        "uv sync",
        "uv run pytest steps/02-db-queue",
    ],
)
def test_a_right_command_passes(command_line):
    assert check_command_line(command_line) == []


def test_blocks_are_read_as_the_renderer_reads_them():
    text = "\n".join([
        "```console",
        "$ workbook twitter-mode hang   # a comment",
        "$ curl -s -X POST http://x \\",
        "    -d '{\"text\": \"hi\"}'",
        "{\"data\": 1}",
        "```",
        "`````diff",
        " ```console",
        "-$ workbook gone",
        " ```",
        "`````",
        "    ```console",
        "    $ make test",
        "    ```",
    ])
    blocks = shell_blocks(text)
    assert [[command for _, command in commands_in_block(lines)] for _, lines in blocks] == [
        ["workbook twitter-mode hang   # a comment", "curl -s -X POST http://x -d '{\"text\": \"hi\"}'"],
        ["make test"],
    ]
    assert simple_commands("A=1 B=2 workbook up 01 && cd x | y # note") == [
        ["workbook", "up", "01"], ["cd", "x"], ["y"]
    ]
