"""Arithmetic: dividing by zero, square roots and logarithms outside their domain, numbers too big."""

from __future__ import annotations

import ast

from .context import Context
from .model import Diagnosis
from .registry import rule
from .safe_eval import evaluate
from .text import code, on, snippet


@rule(ZeroDivisionError, kinds="zero-division")
def zero_division(ctx: Context) -> Diagnosis | None:
    line = ctx.line
    if "cannot be raised to a negative power" in ctx.message:  # `0 ** -1` is 1 / 0; no `/` on the line
        return Diagnosis(
            "zero-division", f"Zero raised to a negative power{on(line)}",
            f"{ctx.where(True)} 0 is raised to a negative power. A negative power means dividing: `x ** -1` is "
            "`1 / x`, so for 0 it is a division by zero, which has no answer.",
            line, "Check that the base is not 0 before raising it to a negative power.")
    divisor = None
    for node in ctx.nodes_on_line((ast.BinOp, ast.AugAssign)):
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)):
            right = node.right if isinstance(node, ast.BinOp) else node.value
            ok, value = evaluate(ctx, right)
            if ok and isinstance(value, (int, float)) and value == 0:
                divisor = snippet(right)
                break
    literal = divisor is not None and divisor.lstrip("-").replace(".", "").isdigit()
    subject = f" (`{divisor}` is 0)" if divisor and not literal else ""
    if literal:
        suggestion = "Divide by a number other than 0."
    elif divisor and divisor.startswith("len("):
        suggestion = (f"The list is empty, so {code(divisor)} is 0. Check that it has items first, e.g. with "
                      f"`if {divisor[4:-1]}:`.")
    else:
        suggestion = (f"Check that {code(divisor) if divisor else 'the number you divide by'} is not 0 before "
                      f"dividing, e.g. with `if {divisor or 'divisor'} != 0:`.")
    return Diagnosis(
        "zero-division", f"Division by zero{on(line)}",
        f"{ctx.where(True)} a number is divided by zero{subject}, which has no answer, so Python stops. "
        "This also applies to `//` and `%`.",
        line, suggestion)


_DOMAINS = {
    "sqrt": ("the square root", "a negative number", "Check that the number is 0 or more; for the square root of a "
                                                     "negative number, `cmath.sqrt` gives a complex number."),
    "log": ("the logarithm", "0 or a negative number", "Check that the number is more than 0 before taking its log."),
    "log10": ("the logarithm", "0 or a negative number", "Check that the number is more than 0."),
    "log2": ("the logarithm", "0 or a negative number", "Check that the number is more than 0."),
    "acos": ("the arc cosine", "a number outside -1 to 1", "Check that the number is between -1 and 1."),
    "asin": ("the arc sine", "a number outside -1 to 1", "Check that the number is between -1 and 1."),
}


@rule(ValueError, kinds="math-domain")
def math_domain(ctx: Context) -> Diagnosis | None:
    if ctx.message != "math domain error":
        return None
    line = ctx.line
    for call in ctx.nodes_on_line(ast.Call):
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name in _DOMAINS and call.args:
            what, bad, fix = _DOMAINS[name]
            found, value = evaluate(ctx, call.args[0])
            shown = f" (here {code(repr(value))})" if found and isinstance(value, (int, float)) else ""
            return Diagnosis(
                "math-domain", f"{what.capitalize()} of {bad}{on(line)}",
                f"{ctx.where(True)} `{snippet(func)}(...)` is asked for {what} of {bad}{shown}. Among real numbers "
                "that has no answer, so the `math` module stops with \"math domain error\".",
                line, fix)
    return Diagnosis(
        "math-domain", f"A math function got a number it can't work with{on(line)}",
        f"{ctx.where(True)} a function of the `math` module got a number outside the values it works for, like "
        "the square root of a negative number or the logarithm of 0.",
        line, "Print the number just before this line and check it is in the range the function accepts.")


@rule(OverflowError, kinds="overflow")
def overflow(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    if msg == "int too large to convert to float":
        detail = "a whole number is too big to become a decimal number (a `float` stops at about 1.8e308)"
        fix = "Keep the calculation in whole numbers (use `//` instead of `/`), or work with smaller numbers."
    elif msg in ("math range error",) or "Numerical result out of range" in msg or "too large" in msg:
        detail = "the result is too big for a decimal number (a `float` stops at about 1.8e308)"
        fix = "Check the numbers going into the calculation: a growing loop or a large power is the usual cause."
    else:
        return None
    return Diagnosis(
        "overflow", f"A number too big to hold{on(line)}",
        f"{ctx.where(True)} {detail}. Whole numbers (`int`) can grow as big as memory allows; decimal numbers can't.",
        line, fix)
