"""The rules and how they are tried: a rule says which exceptions it explains and which kinds it gives.

A rule is a function ``(ctx) -> Diagnosis | None`` decorated with :func:`rule`. For an error, the rules
registered for its most specific class run first (``UnboundLocalError`` before ``NameError``), then
those of each base class in turn; among the rules of one class, a lower ``order`` runs first, then the
order of registration. The first rule that returns a diagnosis wins; ``None`` means "not mine, or not
sure", and the next rule is tried. Every diagnosis passes :func:`finish` before it is shown, where any
code its suggestion proposes is compiled: a suggestion whose code does not compile is dropped.
"""

from __future__ import annotations

import re
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

from .context import Context
from .model import Diagnosis
from .text import PROPOSAL, code

RuleFunction = Callable[[Context], "Diagnosis | None"]


@dataclass(frozen=True)
class Rule:
    errors: tuple[type[BaseException], ...]
    kinds: tuple[str, ...]
    func: RuleFunction
    order: int
    index: int

    @property
    def name(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"


RULES: list[Rule] = []


def rule(*errors: type[BaseException], kinds: tuple[str, ...] | str, order: int = 100) -> Callable:
    """Register a rule for ``errors`` that returns diagnoses of the given ``kinds``."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if not errors or not kinds:
        raise ValueError("a rule needs at least one exception class and one kind")

    def register(func: RuleFunction) -> RuleFunction:
        RULES.append(Rule(tuple(errors), kinds, func, order, len(RULES)))
        return func

    return register


def rules_for(error: BaseException) -> list[Rule]:
    """The rules that may explain ``error``, in the order they are tried."""
    found: list[Rule] = []
    for cls in type(error).__mro__:
        mine = [r for r in RULES if cls in r.errors and r not in found]
        found.extend(sorted(mine, key=lambda r: (r.order, r.index)))
    return found


def all_kinds() -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for r in RULES:
        for kind in r.kinds:
            seen.setdefault(kind, None)
    return tuple(seen)


def run(ctx: Context, strict: bool = False) -> Diagnosis | None:
    """The first diagnosis a rule gives for ``ctx.error``, checked; ``None`` when no rule is sure.

    ``strict`` (for tests) lets a rule's own exception through instead of trying the next rule, and
    refuses a kind the rule did not declare.
    """
    for r in rules_for(ctx.error):
        try:
            found = r.func(ctx)
        except Exception:
            if strict:
                raise
            continue
        if found is None:
            continue
        if found.kind not in r.kinds:
            if strict:
                raise AssertionError(f"{r.name} gave the undeclared kind {found.kind!r}")
            continue
        return finish(ctx, found)
    return None


# ----------------------------------------------------------------------------------------- checking

_PROPOSED = re.compile(re.escape(PROPOSAL.open) + r"(?:(\d+)" + re.escape(PROPOSAL.sep) + r")?(.*?)"
                       + re.escape(PROPOSAL.close), re.S)


def finish(ctx: Context, found: Diagnosis) -> Diagnosis:
    """Check what ``found`` proposes: code that does not compile drops the whole suggestion."""
    suggestion = found.suggestion
    if suggestion is not None:
        ok = True

        def shown(match: re.Match) -> str:
            nonlocal ok
            line = int(match.group(1)) if match.group(1) else None
            if not compiles(match.group(2)) or (line is not None and not fixes_line(ctx, line, match.group(2))):
                ok = False
            return code(match.group(2), limit=100)

        suggestion = _PROPOSED.sub(shown, suggestion)
        if not ok:
            suggestion = None
    return replace(found, title=_one_line(_unmark(found.title)), explanation=_unmark(found.explanation),
                   suggestion=suggestion)


def compiles(source: str) -> bool:
    """Whether ``source`` is valid Python: a statement, an expression, or a block header (``if x:``)."""
    text = textwrap.dedent(source).strip("\n")
    if not text.strip():
        return False
    candidates = [text]
    if text.rstrip().endswith(":"):
        body = text + "\n    pass"
        candidates.append(body)
        first = text.split(None, 1)[0] if text.split() else ""
        if first in ("elif", "else", "else:"):  # a clause is valid only after its opener
            candidates.append("if True:\n    pass\n" + body)
        elif first in ("except", "except:", "finally", "finally:"):
            candidates.append("try:\n    pass\n" + body)
    for candidate in candidates:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compile(candidate, "<suggestion>", "exec", dont_inherit=True)
            return True
        except (SyntaxError, ValueError):
            continue
    return False


def fixes_line(ctx: Context, line: int, new: str) -> bool:
    """Whether the cell, with ``line`` replaced by ``new``, no longer fails at or before that line."""
    lines = list(ctx.lines)
    if not 1 <= line <= len(lines) or "\n" in new.strip("\n"):
        return False
    old = lines[line - 1]
    indent = old[: len(old) - len(old.lstrip())]
    lines[line - 1] = indent + new.strip()
    if new.rstrip().endswith(":") and (line == len(lines) or not lines[line].strip()):
        lines.insert(line, indent + "    pass")  # a header proposed for the cell's last line
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile("\n".join(lines) + "\n", "<cell>", "exec", dont_inherit=True)
        return True
    except SyntaxError as err:
        # Still failing on that line: not a fix. An error before it is the cell's own (an IPython magic,
        # which plain compile() can't read) and says nothing about the proposal.
        return isinstance(err.lineno, int) and err.lineno != line
    except ValueError:
        return False


def _unmark(text: str) -> str:
    return _PROPOSED.sub(lambda m: code(m.group(2), limit=100), text)


def _one_line(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
