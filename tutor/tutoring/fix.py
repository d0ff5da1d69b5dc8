"""Suggested fixes for a failing cell, shown only after they pass a check.

The model is asked for the corrected cell in one fenced code block. A candidate is accepted
only if it is code, differs from the original, compiles, and (for a syntax error) changes no
more than it needs to. A rejected candidate is retried with the reason; after the last
attempt the fix is withheld with an honest message, never shown as a fix.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..backends.base import Backend, GenerationOptions, Message
from .explain import TUTOR_VOICE

CODE_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class FixResult:
    status: str  # "fixed" or "withheld"
    code: str | None  # the checked corrected cell
    diff: str  # unified diff, original -> fixed ("" when withheld)
    explanation: str  # the model's words around the code
    attempts: int
    problems: tuple[str, ...] = field(default=())  # why candidates were rejected

    @property
    def message(self) -> str:
        if self.status == "fixed":
            return "This fix compiles and changes only what the error needs."
        reasons = "; ".join(dict.fromkeys(self.problems)) or "no code came back"  # each reason once
        return f"No fix is shown: the suggestions did not pass the check ({reasons}). Try the explanation instead."


def fix_messages(source: str, error: str, rejected: str | None = None) -> list[Message]:
    retry = (f"\n\nA previous answer was rejected because {rejected}. Make sure the code block compiles and "
             "changes only what the error needs.") if rejected else ""
    return [
        {"role": "system", "content": TUTOR_VOICE},
        {"role": "user", "content": "This notebook cell fails. Reply with the corrected cell in ONE ```python code "
                                    "block, changing only what is needed to fix the error, then one short "
                                    f"sentence saying what you changed.\n\n```python\n{source}\n```\n\n"
                                    f"The error:\n```\n{error}\n```{retry}"},
    ]


def extract_code(reply: str) -> tuple[str | None, str]:
    """(the first fenced code block, the text around it)."""
    match = CODE_FENCE.search(reply)
    if not match:
        return None, reply.strip()
    words = (reply[:match.start()] + reply[match.end():]).strip()
    return match.group(2).rstrip("\n") + "\n" if match.group(2).strip() else None, words


def check_fix(original: str, fixed: str, *, syntax_error: bool,
              to_python: Callable[[str], str] = lambda code: code) -> list[str]:
    """Problems with a candidate fix; empty when it may be shown. ``to_python`` turns notebook
    syntax (magics) into Python first; the kernel passes IPython's transformer."""
    if fixed.strip() == original.strip():
        return ["it is the same code as the cell"]
    try:
        compile(to_python(fixed), "<suggested fix>", "exec")
    except SyntaxError as exc:
        return [f"it does not compile (line {exc.lineno}: {exc.msg})"]
    if syntax_error:
        before, after = original.splitlines(), fixed.splitlines()
        changed = sum(1 for op in difflib.ndiff(before, after) if op[:1] in "+-")
        allowed = max(4, len(before) // 2)
        if changed > allowed:
            return [f"it rewrites {changed} lines where a syntax error needs a small change"]
    return []


def unified_diff(original: str, fixed: str) -> str:
    return "".join(difflib.unified_diff(original.splitlines(keepends=True), fixed.splitlines(keepends=True),
                                        "your cell", "suggested fix"))


def propose_fix(backend: Backend, source: str, error: str, *, syntax_error: bool, attempts: int = 2,
                options: GenerationOptions | None = None, to_python: Callable[[str], str] = lambda code: code,
                on_text: Callable[[str], None] | None = None) -> FixResult:
    """Ask for a fix up to ``attempts`` times; return the first candidate that passes the check.

    ``on_text`` receives the model's reply as it streams (for a progress display).
    """
    # A fix mostly copies the student's code: greedy with drafts looked up in it (same tokens, fewer passes).
    options = options or GenerationOptions(max_tokens=max(256, 2 * len(source) // 3 + 128), temperature=0.0,
                                           draft_tokens=8)
    problems: list[str] = []
    words = ""
    for attempt in range(1, attempts + 1):
        stream = backend.chat(fix_messages(source, error, problems[-1] if problems else None), options)
        reply = ""
        for piece in stream:
            reply += piece
            if on_text:
                on_text(piece)
        code, words = extract_code(reply)
        if code is None:
            problems.append("the reply had no code block")
            continue
        found = check_fix(source, code, syntax_error=syntax_error, to_python=to_python)
        if not found:
            return FixResult("fixed", code, unified_diff(source, code), words, attempt, tuple(problems))
        problems += found
        if attempt < attempts:  # a little randomness, so a retry can differ from a greedy answer that failed
            options = GenerationOptions(max_tokens=options.max_tokens, temperature=0.2, seed=attempt)
    return FixResult("withheld", None, "", words, attempts, tuple(problems))
