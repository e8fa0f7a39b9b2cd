"""Every `cdp` command the README shows exists, and every flag it gives that command is in the command's `--help`.

The README is where a newcomer copies commands from; a flag renamed in the CLI and not in the README is a command
that fails on the first try. The uses are read from inline code (the CLI table, prose) and fenced code blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from cdp_local.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
_INLINE = re.compile(r"`([^`\n]+(?:\n[^`\n]+)?)`")  # a span may wrap onto the next line
# `cdp` as a command: at the start, after a space, `/bin/`, `(` or `$(`, and followed by a space
_CDP = re.compile(r"(?:^|(?<=[\s(/]))cdp(?= )")
_SHELL_END = re.compile(r"\s(?:\|\s|&&|;|&$|&\s|#|>|2>)|\)")
_SUBSTITUTION = re.compile(r"\$\([^()]*\)")  # an argument computed by the shell: "$(date -u +%F)"
_FLAG = re.compile(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*|-[a-zA-Z])(?![\w-])")


@dataclass(frozen=True)
class Use:
    """One `cdp ...` use in the README: the command path and the flags given to it."""

    path: tuple[str, ...]
    flags: tuple[str, ...]
    source: str

    def __str__(self) -> str:
        return f"cdp {' '.join(self.path)} {' '.join(self.flags)}  <- {self.source!r}"


def snippets(text: str) -> list[str]:
    """Lines of fenced code blocks (backslash continuations joined) and inline code spans of the prose."""
    found: list[str] = []
    for block in _FENCE.findall(text):
        found += block.replace("\\\n", " ").splitlines()
    prose = _FENCE.sub("", text)
    found += [span.replace("\n", " ") for span in _INLINE.findall(prose)]
    return found


def command_texts(snippet: str) -> list[str]:
    """What follows each `cdp ` in a snippet, up to the end of that shell command (pipe, &&, ;, &, comment, `)`)."""
    texts = []
    for match in _CDP.finditer(snippet):
        rest = _SUBSTITUTION.sub("VALUE", snippet[match.end() :].replace("\\|", "|"))
        end = _SHELL_END.search(rest)
        texts.append((rest[: end.start()] if end else rest).strip())
    return texts


def _words(text: str) -> list[str]:
    return [w.strip("[]'\"") for w in text.split()]


def uses_in(text: str, root: TyperGroup) -> list[Use]:
    """Resolve each command text against the CLI tree. `a|b` after a group names alternative subcommands; after a
    command it is an option's choices (`--kind members|orders`). An unknown subcommand raises with the source."""
    uses: list[Use] = []
    for snippet in snippets(text):
        for command_text in command_texts(snippet):
            uses += _resolve(root, (), command_text, snippet)
    return uses


def _resolve(group: TyperGroup, path: tuple[str, ...], rest: str, source: str) -> list[Use]:
    if not rest or rest.startswith("-") or rest.startswith("["):  # options of the group itself (e.g. --help)
        return [Use(path, tuple(_FLAG.findall(rest)), source)]
    first, _, tail = rest.partition(" ")
    if "|" not in first and isinstance(group.commands.get(first), TyperGroup):
        # `audience define|list|export` lists the audience group's commands, whatever the root also has (`export`)
        subgroup = group.commands[first]
        assert isinstance(subgroup, TyperGroup)
        return _resolve(subgroup, (*path, subgroup.name or first), tail.strip(), source)
    pieces: list[str] = []
    for piece in _split_outside_brackets(rest):  # alternatives are pieces that start with a subcommand of this group
        first = (_words(piece) or [""])[0]
        if pieces and first not in group.commands:
            pieces[-1] += "|" + piece
        else:
            pieces.append(piece)
    uses: list[Use] = []
    for piece in pieces:
        name, _, tail = piece.strip().partition(" ")
        if name.startswith("<"):  # a placeholder (`cdp <command> --help`) names no command to check
            continue
        command = group.commands.get(name.strip("[]"))
        if command is None:
            raise AssertionError(f"README: `cdp {' '.join(path)} {name}` is not a command (in {source!r})")
        if isinstance(command, TyperGroup):
            uses += _resolve(command, (*path, command.name or name), tail.strip(), source)
        else:
            uses.append(Use((*path, command.name or name), tuple(_FLAG.findall(tail)), source))
    return uses


def _split_outside_brackets(text: str) -> list[str]:
    """Split on `|` except inside [...] (`[--suite a|b]` lists an option's choices, not commands)."""
    pieces, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "|" and depth == 0:
            pieces.append(current)
            current = ""
        else:
            current += char
    return [*pieces, current]


@cache
def help_flags(path: tuple[str, ...]) -> frozenset[str]:
    """The flags `cdp <path> --help` prints (wide, plain output, so no option name is wrapped or cut)."""
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return frozenset(_FLAG.findall(result.output))


def _root() -> TyperGroup:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    return root


ROOT = _root()
USES = uses_in(README.read_text(encoding="utf-8"), ROOT)


def test_the_readme_shows_the_commands_a_newcomer_needs() -> None:
    # Given the README's cdp uses; Then they cover every top-level command (so the parser found the table and blocks)
    assert {use.path[0] for use in USES if use.path} >= set(ROOT.commands)
    assert len(USES) >= 40


@pytest.mark.parametrize("use", USES, ids=lambda u: " ".join(u.path) + " " + " ".join(u.flags))
def test_every_flag_in_the_readme_is_in_the_commands_help(use: Use) -> None:
    # Given one cdp use in the README; When its command's --help is read; Then it lists every flag the README gives
    missing = set(use.flags) - help_flags(use.path)
    assert not missing, f"{sorted(missing)} not in `cdp {' '.join(use.path)} --help`: {use}"


def test_the_parser_catches_a_renamed_flag_and_an_unknown_command() -> None:
    # Given README text with a flag `cdp import run` does not have, and a subcommand that does not exist
    text = "Run `cdp import run FILE --brnd demo-brand` then\n```bash\ncdp profile shw x\n```\n"
    # When it is parsed; Then the unknown command is refused and the flag is not in the command's help
    with pytest.raises(AssertionError, match="cdp profile shw"):
        uses_in(text, ROOT)
    (use,) = uses_in(text.split(" then")[0], ROOT)
    assert use.path == ("import", "run") and "--brnd" in set(use.flags) - help_flags(use.path)


def test_alternatives_and_shell_syntax_are_read_as_a_shell_would() -> None:
    # Given a table cell with alternative subcommands and option choices, and a pipeline inside $( )
    cell = (
        "`cdp tags validate [PATH...]\\|list\\|batch --data DIR`, `cdp import run FILE [--kind members\\|orders]` and "
        "`cdp bench [--suite pipeline\\|tags\\|all]`"
    )
    block = (
        "```bash\nP=$(cdp profile show --identifier phone:1 --json | python3 -c 'x --nope')\n"
        'cdp replay archive --since "$(date -u +%F)" --until x\n```\n'
    )
    uses = {(u.path, u.flags) for u in uses_in(cell + "\n" + block, ROOT)}
    # Then each subcommand gets its own flags, choices are not commands, and the pipe's right side is not cdp's
    assert uses == {
        (("tags", "validate"), ()),
        (("tags", "list"), ()),
        (("tags", "batch"), ("--data",)),
        (("import", "run"), ("--kind",)),
        (("bench",), ("--suite",)),
        (("profile", "show"), ("--identifier", "--json")),
        (("replay", "archive"), ("--since", "--until")),
    }
