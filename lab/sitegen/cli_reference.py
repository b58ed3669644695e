"""The `workbook` command's reference page, generated from its argparse parsers.

Every subcommand, and the nested ones (`bench kestrel`, `bench db-queue`), with its synopsis and a
table of its arguments. Some subcommands hand their arguments to another module's own parser
(`workbook drill` runs `lab.drill.run.main(argv)`): the page shows that parser, so nothing the
command accepts is left out. `workbook generate-docs` writes the page; a test fails when it is stale.

The page is rendered from the parsers' arguments, not from `--help` text, so it is the same on
every Python version (argparse's help layout changes between versions).
"""

from __future__ import annotations

import argparse
import html
import importlib
from unittest import mock

from lab.cli import BENCHMARKS, build_parser
from lab.runtime.stages import REPO_ROOT

PAGE = REPO_ROOT / "docs" / "generated" / "cli.md"

# `bench NAME ARGS...` forwards ARGS to the benchmark's module, the same way.
NESTED = {"bench": BENCHMARKS}


class _Built(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def module_parser(module_name: str) -> argparse.ArgumentParser:
    """The parser a module's main(argv) uses: its build_parser(), or the one main() builds inline.

    For the inline case, main([]) runs until it asks its parser to parse, and is stopped there:
    parse_args is replaced, for that moment, by a function that hands the parser back.
    """
    module = importlib.import_module(module_name)
    if hasattr(module, "build_parser"):
        return module.build_parser()

    def hand_back(parser, *args, **kwargs):
        raise _Built(parser)

    with mock.patch.object(argparse.ArgumentParser, "parse_args", hand_back):
        try:
            module.main([])
        except _Built as built:
            return built.parser
    raise RuntimeError(f"{module_name}.main() returned without parsing its arguments")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def is_forwarding(parser: argparse.ArgumentParser) -> bool:
    """A stub that takes its whole command line as one REMAINDER argument (see lab/cli.py)."""
    return parser.prefix_chars == "\0"


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    """`workbook`, `workbook twitter`, ..., `workbook bench kestrel`: each command and its parser."""
    top = build_parser()
    commands = {"workbook": top}
    for name, parser in subcommands(top).items():
        if is_forwarding(parser):
            module_name = parser.get_default("module")
            if module_name is None:
                raise RuntimeError(f"`workbook {name}` forwards its arguments but names no module")
            parser = module_parser(module_name)
        commands[f"workbook {name}"] = parser
        for nested, module_name in NESTED.get(name, {}).items():
            commands[f"workbook {name} {nested}"] = module_parser(module_name)
        # A forwarded command's own subcommands: `workbook exercise start`, ...
        for nested, nested_parser in subcommands(parser).items():
            commands[f"workbook {name} {nested}"] = nested_parser
    return commands


def summaries_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The one-line help of each of a parser's subcommands, as its --help lists them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}




# -- rendering ----------------------------------------------------------------------------------


def metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.dest if not action.option_strings else action.dest.upper()


def argument_form(action: argparse.Action) -> str:
    """How the argument is written: `--port PORT`, `-v, --verbose`, `stage`, `[mode]`, `...`."""
    if action.nargs == argparse.REMAINDER:
        return "..."
    if action.nargs == 0:
        value = ""
    elif action.nargs == "?":
        value = f"[{metavar(action)}]"
    elif action.nargs == "*":
        value = f"[{metavar(action)} ...]"
    elif action.nargs == "+":
        value = f"{metavar(action)} [{metavar(action)} ...]"
    elif isinstance(action.nargs, int):
        value = " ".join([metavar(action)] * action.nargs)
    else:
        value = metavar(action)
    if not action.option_strings:
        return value
    return ", ".join(action.option_strings) + (f" {value}" if value else "")


def synopsis(command: str, parser: argparse.ArgumentParser) -> str:
    parts = [command]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        form = argument_form(action).split(", ")[-1]
        longs = [option for option in action.option_strings if option.startswith("--")]
        if len(longs) > 1:  # an old name kept as an alias: the synopsis shows the new one
            form = form.replace(longs[-1], longs[0], 1)
        if isinstance(action, argparse._SubParsersAction):
            parts.append(f"{action.metavar or 'COMMAND'} ...")
        elif action.option_strings and not action.required:
            parts.append(f"[{form}]")
        else:
            parts.append(form)
    return " ".join(parts)


def help_text(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    text = action.help or ""
    if "%(" in text:  # argparse's own placeholders, as --help would expand them
        text = text % {**vars(action), "prog": parser.prog}
    if action.nargs == argparse.REMAINDER and not text:
        text = "the arguments of the command named, listed in its own section"
    elif not text and action.default not in (None, False, argparse.SUPPRESS):
        text = f"default {action.default}"
    return text


def cell(text: str) -> str:
    """Text for a Markdown table cell: no raw HTML, no column breaks.

    Outside `code spans` a `|` would end the cell and `<stage>` would be read as HTML; inside
    them both are shown as typed, so only the text between code spans is escaped.
    """
    parts = text.replace("\n", " ").split("`")
    for index in range(0, len(parts), 2):  # the even parts are outside code spans
        parts[index] = html.escape(parts[index], quote=False).replace("|", "\\|")
    return "`".join(parts)


def command_section(command: str, parser: argparse.ArgumentParser, summary: str) -> list[str]:
    lines = [f"## `{command}`", ""]
    about = parser.description or summary
    if about:
        lines += [cell(about), ""]
    lines += ["```text", synopsis(command, parser), "```", ""]
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        rows.append(f"| `{argument_form(action)}` | {cell(help_text(action, parser))} |")
    if rows:
        lines += ["| argument | what it does |", "|---|---|", *rows, ""]
    return lines


def reference_markdown() -> str:
    commands = command_parsers()
    # Each command's one-line help, from the parser that lists it: `workbook exercise start` too.
    short = {
        f"{command} {name}": text
        for command, parser in commands.items()
        for name, text in summaries_of(parser).items()
    }
    lines = ["| command | what it does |", "|---|---|"]
    lines += [f"| `workbook {name}` | {cell(text)} |" for name, text in summaries_of(build_parser()).items()]
    lines.append("")
    for command, parser in commands.items():
        lines += command_section(command, parser, short.get(command, ""))
    return "\n".join(lines).rstrip("\n") + "\n"


def write_reference(page=PAGE):
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(reference_markdown())
    return page
