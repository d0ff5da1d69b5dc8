"""Indentation: blocks that are indented too much, too little, unevenly, or with tabs and spaces mixed."""

from __future__ import annotations

import re

from .context import Context
from .model import Diagnosis
from .registry import rule
from .text import on


def _where(line: int | None) -> str:
    return f"Line {line}" if line else "A line"


@rule(TabError, kinds="mixed-tabs-spaces")
@rule(IndentationError, kinds="mixed-tabs-spaces", order=10)
def mixed_tabs_and_spaces(ctx: Context) -> Diagnosis | None:
    if not (isinstance(ctx.error, TabError) or "inconsistent use of tabs" in ctx.message):
        return None
    line = ctx.line
    return Diagnosis(
        "mixed-tabs-spaces", f"Tabs and spaces are mixed in the indentation{on(line)}",
        f"{_where(line)} is indented with a mix of tab characters and spaces. They can look the same on screen, "
        "but Python counts them differently, so it can't tell which block the line belongs to.",
        line, "Indent with spaces only (4 per level): delete the indentation of this block and type it again.")


@rule(IndentationError, kinds="unexpected-indent")
def unexpected_indent(ctx: Context) -> Diagnosis | None:
    if "unexpected indent" not in ctx.message:
        return None
    line, where = ctx.line, _where(ctx.line)
    return Diagnosis(
        "unexpected-indent", f"{where} is indented but should not be",
        "Python uses the spaces at the start of a line to group lines into blocks. "
        f"{where} starts with spaces, but there is no `if`, `for`, `def` or other line ending in `:` "
        "above it that opens a block for it.",
        line, f"Remove the spaces at the start of {'line ' + str(line) if line else 'that line'} "
              "so it lines up with the line above.")


@rule(IndentationError, kinds="expected-indent")
def expected_indent(ctx: Context) -> Diagnosis | None:
    msg, line, where = ctx.message, ctx.line, _where(ctx.line)
    if not msg.startswith("expected an indented block"):
        return None
    m = re.search(r"after (?:'(\w+)' statement|(function) definition|(class) definition) on line (\d+)", msg)
    header = head_line = None
    if m:
        header = m.group(1) or ("def" if m.group(2) else "class")
        head_line = int(m.group(4))
        head_line = head_line if 1 <= head_line <= len(ctx.lines) else None
    opener = f"the `{header}` line" if header else "a line ending with `:`"
    if head_line is not None and line == head_line:  # nothing at all follows the header
        return Diagnosis(
            "expected-indent", f"The block after line {line} is empty",
            f"A line ending with `:` starts a block, and a block needs at least one indented line. "
            f"Nothing indented follows {opener} on line {line}.",
            line, "Add the indented lines of the block, or `pass` as a placeholder for now.")
    after = f" after {opener}{on(head_line)}" if header else ""
    return Diagnosis(
        "expected-indent", f"{where} should be indented",
        "A line ending with `:` starts a block, and the lines inside the block must be indented "
        f"(usually by 4 spaces). {where} comes right{after or ' after such a line'} but is not indented.",
        line, f"Indent {'line ' + str(line) if line else 'the lines of the block'} by 4 spaces.")


@rule(IndentationError, kinds="inconsistent-dedent")
def inconsistent_dedent(ctx: Context) -> Diagnosis | None:
    if "unindent does not match" not in ctx.message:
        return None
    line, text, where = ctx.line, ctx.text, _where(ctx.line)
    levels = sorted({len(row) - len(row.lstrip(" \t")) for row in ctx.lines[: (line or 1) - 1] if row.strip()})
    shown = ", ".join(str(n) for n in levels[:5])
    shown = shown[::-1].replace(" ,", " ro ", 1)[::-1] if len(levels) > 1 else shown
    have = len(text) - len(text.lstrip(" \t"))
    detail = f" It starts with {have} spaces, but the lines above start with {shown} spaces." if levels else ""
    return Diagnosis(
        "inconsistent-dedent", f"{where} does not line up with any block above it",
        f"When a block ends, the next line must start exactly where an earlier line started.{detail}",
        line, "Line it up with the block it belongs to by using the same number of spaces as that block.")
