"""``None`` where a value was expected: which call gave it (a method that works in place, a function
without ``return``), when the cell or the student's functions tell."""

from __future__ import annotations

import ast
import dis
import types

from .context import Context
from .model import Diagnosis
from .text import capital, code, on, snippet

# Methods that change their object in place and give back None.
IN_PLACE = {"sort", "reverse", "append", "extend", "insert", "remove", "clear", "update", "add", "discard",
            "shuffle"}
_NONE_FUNCTIONS = {"print", "exec", "setattr", "delattr"}
KINDS = ("none-from-method", "missing-return", "none-value")


def returns_only_none(func: object) -> bool:
    """True for a plain Python function whose every ``return`` gives back ``None``."""
    if not isinstance(func, types.FunctionType):
        return False
    code_ = func.__code__
    if code_.co_flags & (0x20 | 0x80 | 0x100 | 0x200) or len(code_.co_code) > 20_000:  # generators, coroutines
        return False
    previous = None
    for ins in dis.get_instructions(code_):
        if ins.opname == "RETURN_CONST" and ins.argval is not None:
            return False
        if ins.opname == "RETURN_VALUE" and not (previous is not None and previous.opname == "LOAD_CONST"
                                                 and previous.argval is None):
            return False
        previous = ins
    return True


def def_returns_value(node: ast.AST) -> bool:
    stack = list(getattr(node, "body", []))
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Return) and n.value is not None and not (
                isinstance(n.value, ast.Constant) and n.value.value is None):
            return True
        if isinstance(n, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        stack.extend(ast.iter_child_nodes(n))
    return False


def _is_statement_call(ctx: Context, call: ast.Call) -> bool:
    """A call that is a whole statement (``xs.sort()`` on its own) can't be where the None was used."""
    tree = ctx.tree
    if tree is None:
        return False
    return any(isinstance(n, ast.Expr) and n.value is call for n in ast.walk(tree))


def none_rule(ctx: Context, what: str) -> Diagnosis:
    """Explain an operation on ``None``: which call gave the ``None``, when we can tell."""
    line = ctx.line
    defs = ctx.function_defs()

    def no_return(name: str) -> bool:
        if name in defs:
            return not def_returns_value(defs[name])
        found, value = ctx.user_value(name)
        return found and returns_only_none(value)

    def explain_call(call: ast.Call, via: str | None) -> Diagnosis | None:
        func = call.func
        through = f"`{via}` got its value from {code(snippet(call))}, and " if via else ""
        if isinstance(func, ast.Name) and func.id in _NONE_FUNCTIONS:
            return Diagnosis(
                "none-from-method", f"{func.id}() gives back None{on(line)}",
                f"{what} {ctx.where()}. {capital(through)}`{func.id}()` shows "
                "or does something but gives back `None`, not a value you can use.",
                line, f"Use the value itself instead of what `{func.id}(...)` returns.")
        if isinstance(func, ast.Name) and no_return(func.id):
            return Diagnosis(
                "missing-return", f"The function {func.id} gives back None{on(line)}",
                f"{what} {ctx.where()}. {capital(through)}`{func.id}` has no "
                "`return` line with a value, so calling it gives back `None` and its result is lost.",
                line, f"Add a `return` line at the end of `{func.id}` that gives back its result.")
        if isinstance(func, ast.Attribute) and func.attr in IN_PLACE:
            target = snippet(func.value)
            return Diagnosis(
                "none-from-method", f".{func.attr}() changes the value in place and gives back None{on(line)}",
                f"{what} {ctx.where()}. {capital(through)}"
                f"`.{func.attr}()` changes {code(target)} itself and gives back `None`, so there is no "
                "new value to use.",
                line, (f"Call {code(target + '.' + func.attr + '(...)')} on its own line, then keep using "
                       f"{code(target)}" if isinstance(func.value, ast.Name) else
                       f"Store the value in a variable first, call `.{func.attr}(...)` on it on its own line, "
                       "then use the variable") + (" (or use `sorted(...)` for a sorted copy)." if func.attr == "sort"
                                                  else "."))
        return None

    calls = sorted(ctx.nodes_on_line(ast.Call), key=lambda n: (n.lineno, n.col_offset))
    for call in calls:
        found = explain_call(call, None)
        if found and not _is_statement_call(ctx, call):
            return found
    used = {n.id for n in ctx.nodes_on_line(ast.Name) if isinstance(n.ctx, ast.Load)}
    tree = ctx.tree
    if tree is not None and line is not None:
        latest: dict[str, ast.Call] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and node.lineno < line:
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id in used:
                        if target.id not in latest or latest[target.id].lineno < node.lineno:
                            latest[target.id] = node.value
        for name, call in latest.items():
            found = explain_call(call, name)
            if found:
                return found
    for name in sorted(used):  # a variable set to None in an earlier cell by a function without return
        found_value, value = ctx.user_value(name)
        if found_value and value is None:
            break
    else:
        name = None
    subject = f"`{name}` is `None`" if name else "a value is `None`"
    return Diagnosis(
        "none-value", f"A value is None{on(line)}",
        f"{what} {ctx.where()}: {subject}, Python's value for \"nothing\". That usually comes from a function "
        "without a `return` line, or from a method like `.sort()` or `.append()` that changes a list and gives "
        "back `None`.",
        line, "Print the values used on this line to find the `None`, then check where it got its value.")
