"""Exercises and tests: a lesson's stub that is still there, and an ``assert`` that failed.

A lesson's student copy puts ``# YOUR CODE HERE`` and ``raise NotImplementedError()`` where the student's
code goes (tutor.lessons.STUB). A failed ``assert`` is explained with what was expected and what came,
where both can be read without running anything: the sides of a comparison are evaluated only when they
are names, constants, attribute or item reads (safe_eval); a call such as ``f(2)`` is never run again.
"""

from __future__ import annotations

import ast
import builtins
import linecache
import math
import re
import types

from .context import BUILTIN_NAMES, Context
from .model import Diagnosis
from .registry import rule
from .safe_eval import evaluate, safe_repr
from .text import code, on, propose, snippet

STUB_MARK = "# YOUR CODE HERE"
_RAISE_STUB = re.compile(r"\s*raise\s+NotImplementedError\b")


class FrameScope:
    """Name lookups in one frame (the one that raised), for safe_eval."""

    def __init__(self, frame: types.FrameType):
        self.frame = frame

    def lookup(self, name: str) -> tuple[bool, object]:
        for scope in (self.frame.f_locals, self.frame.f_globals):
            try:
                if name in scope:
                    return True, scope[name]
            except Exception:
                continue
        if name in BUILTIN_NAMES:
            return True, getattr(builtins, name)
        return False, None


def _raising(ctx: Context) -> tuple[types.FrameType, str, int, bool] | None:
    """(frame, source line, line number in its file, whether it is this cell) of where the error was raised."""
    if not ctx.raised_in_user_code():
        return None
    filename, lineno, frame = ctx.all_frames[-1]
    here = bool(ctx.frames) and ctx.frames[-1][2] is frame
    text = ctx.lines[lineno - 1] if here and 1 <= lineno <= len(ctx.lines) else linecache.getline(filename, lineno)
    return frame, text.rstrip("\r\n"), lineno, here


@rule(NotImplementedError, kinds="stub-not-replaced")
def stub_not_replaced(ctx: Context) -> Diagnosis | None:
    found = _raising(ctx)
    if found is None:
        return None
    frame, text, lineno, here = found
    if not _RAISE_STUB.match(text):
        return None
    filename = frame.f_code.co_filename
    above = ctx.lines[lineno - 2] if here and lineno >= 2 else linecache.getline(filename, lineno - 1)
    marked = above.strip().upper() == STUB_MARK.upper()
    func = frame.f_code.co_name
    stub = "`# YOUR CODE HERE` and `raise NotImplementedError()`" if marked else "`raise NotImplementedError()`"
    what = f"the function `{func}`" if func != "<module>" else "this exercise"
    if here:
        place = f"on line {lineno - 1 if marked else lineno}" + (f" and {lineno}" if marked else "")
        suggestion = f"Replace {stub} ({place}) with your code, then run the cell again."
        where = f"{ctx.where(True)} the cell reaches"
    else:
        suggestion = (f"Replace {stub} in the cell that defines `{func}` with your code, run that cell, then run "
                      "this one again.")
        where = f"{ctx.where(True)} `{func}` is called, and it still holds"
    why = ("The lesson put it there for you to replace with your own code; until then, "
           f"{what} stops on purpose with `NotImplementedError`." if marked else
           f"It is a placeholder that means \"not written yet\": {what} stops on purpose until it is replaced "
           "with real code.")
    name = f"The exercise {func}" if marked and func != "<module>" else f"{func}()" if func != "<module>" else \
        "This exercise"
    return Diagnosis("stub-not-replaced", f"{name} is not written yet", f"{where} the placeholder {stub}. {why}",
                     ctx.line, suggestion)


def _literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
        return True
    except Exception:
        return False


@rule(AssertionError, kinds="assert-failed")
def assert_failed(ctx: Context) -> Diagnosis | None:
    found = _raising(ctx)
    if found is None:
        return None
    frame, text, lineno, here = found
    node = None
    if here and ctx.tree is not None:
        node = next((n for n in ast.walk(ctx.tree) if isinstance(n, ast.Assert) and n.lineno == lineno), None)
    if node is None:
        try:
            parsed = ast.parse(text.strip())
            node = parsed.body[0] if parsed.body and isinstance(parsed.body[0], ast.Assert) else None
        except SyntaxError:
            node = None
    if node is None:
        return None
    scope = FrameScope(frame)
    line = ctx.line
    message = str(ctx.error) if ctx.error.args else ""
    said = f" Its message says: {code(message, 80)}." if message else ""
    test = node.test
    check = snippet(test)
    title = f"The check {check} is false{on(line)}" if len(check) <= 40 else f"A check is false{on(line)}"
    base = (f"{ctx.where(True)} `assert` checks that {code(check, 80)} is true, and here it is false, so Python "
            f"stops.{said}")
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, right, op = test.left, test.comparators[0], test.ops[0]
        if isinstance(op, (ast.Eq, ast.NotEq)) and _literal(left) and not _literal(right):
            left, right = right, left  # the expected value is the constant, on whichever side
        actual, expected = snippet(left), snippet(right)
        ok_got, got = evaluate(scope, left)
        ok_want, want = evaluate(scope, right)
        got_text = safe_repr(got) if ok_got else None
        want_text = safe_repr(want) if ok_want else None
        if isinstance(op, ast.Eq):
            if got_text is not None and want_text is not None:
                detail = f" {code(actual)} is {code(got_text)}, but {code(want_text)} was expected."
                if isinstance(got, float) and isinstance(want, (int, float)) and math.isclose(got, want, rel_tol=1e-9):
                    return Diagnosis(
                        "assert-failed", f"Decimal numbers are not exactly equal{on(line)}",
                        base + f"{detail} Decimal numbers (floats) are stored with tiny rounding errors, so `==` "
                        "between two of them often fails.",
                        line, f"Compare with a tolerance: {propose(f'assert math.isclose({actual}, {expected})')} "
                              "(after `import math`).")
                if type(got) is not type(want) and str(got) == str(want):
                    detail += (f" They look alike, but one is {type(got).__name__} and the other "
                               f"{type(want).__name__}.")
                return Diagnosis("assert-failed", title, base + detail, line,
                                 "Find where the value gets computed and check why it differs.")
            if want_text is not None:
                return Diagnosis(
                    "assert-failed", title,
                    base + f" {code(want_text)} was expected from {code(actual)}, and it gave something else.",
                    line, f"To see what it gives, run {propose('print(repr(' + actual + '))')} in a cell and "
                          f"compare it with {code(want_text)}.")
        if got_text is not None and not isinstance(op, ast.Eq):
            sides = f" {code(actual)} is {code(got_text)}"
            if want_text is not None and expected != want_text:
                sides += f" and {code(expected)} is {code(want_text)}"
            return Diagnosis("assert-failed", title, base + sides + ".", line,
                             "Check how these values were computed before the `assert`.")
    return Diagnosis(
        "assert-failed", title, base + " Python only tells that the check failed; the values it used show why.", line,
        f"To see the values, print the parts of the check just before it, like {propose('print(' + check + ')')}."
        if len(check) <= 80 else "Print the values the check uses just before it.")
