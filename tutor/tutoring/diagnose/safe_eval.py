"""The value of a tiny expression from a failed frame, without running any of the student's code.

Only names, constants, negation, attribute reads from a plain ``__dict__``, item reads from built-in
containers, arithmetic on plain numbers, and ``len()`` of a built-in container are evaluated. Anything
else (a call, an operator on an object of the student's own class, a property) is "not known", because
evaluating it could run code with side effects. When unsure, a rule says less.
"""

from __future__ import annotations

import ast
import builtins
import operator
import reprlib

from .context import Context

_SCALARS = (int, float, complex, bool, str, bytes, type(None))
_SEQUENCES = (list, tuple, str, bytes, range)
_CONTAINERS = (list, tuple, dict, set, frozenset, range)
_MAX_ITEMS = 10_000
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
               ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
UNKNOWN = (False, None)


def is_plain(value: object, depth: int = 0) -> bool:
    """Whether ``value`` is made of built-in scalars and containers only (its repr runs no user code)."""
    if type(value) in _SCALARS:
        return True
    if type(value) is range:
        return True
    if depth >= 3 or type(value) not in _CONTAINERS:
        return False
    try:
        if len(value) > _MAX_ITEMS:  # type: ignore[arg-type]
            return False
        items = list(value.items()) if type(value) is dict else list(value)  # type: ignore[attr-defined]
    except Exception:
        return False
    flat = [x for pair in items for x in pair] if type(value) is dict else items
    return all(is_plain(x, depth + 1) for x in flat)


def evaluate(ctx: Context, node: ast.AST) -> tuple[bool, object]:
    """``(True, value)`` when ``node``'s value can be read safely from the failed frame, else ``(False, None)``."""
    try:
        return _evaluate(ctx, node, 0)
    except Exception:
        return UNKNOWN


def _evaluate(ctx: Context, node: ast.AST, depth: int) -> tuple[bool, object]:
    if depth > 20:
        return UNKNOWN
    if isinstance(node, ast.Constant):
        return True, node.value
    if isinstance(node, ast.Name):
        return ctx.lookup(node.id)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) <= 100:
        values = []
        for elt in node.elts:
            ok, value = _evaluate(ctx, elt, depth + 1)
            if not ok or (isinstance(node, ast.Set) and not is_plain(value)):
                return UNKNOWN
            values.append(value)
        kind = {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)]
        return True, kind(values)
    if isinstance(node, ast.Dict) and len(node.keys) <= 100:
        result = {}
        for k, v in zip(node.keys, node.values, strict=False):
            if k is None:
                return UNKNOWN
            ok_k, key = _evaluate(ctx, k, depth + 1)
            ok_v, value = _evaluate(ctx, v, depth + 1)
            if not (ok_k and ok_v and is_plain(key)):
                return UNKNOWN
            result[key] = value
        return True, result
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        ok, value = _evaluate(ctx, node.operand, depth + 1)
        if not ok:
            return UNKNOWN
        if isinstance(node.op, ast.Not):
            return (True, not value) if type(value) in _SCALARS else UNKNOWN
        if type(value) in (int, float, complex, bool):
            return True, -value if isinstance(node.op, ast.USub) else +value
        return UNKNOWN
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        return _arithmetic(ctx, node, depth)
    if isinstance(node, ast.Attribute):
        ok, value = _evaluate(ctx, node.value, depth + 1)
        if not ok:
            return UNKNOWN
        try:  # only a plain instance (or module) attribute: reading it runs no code of the student's
            fields = object.__getattribute__(value, "__dict__")
        except Exception:
            return UNKNOWN
        if isinstance(fields, dict) and node.attr in fields:
            return True, fields[node.attr]
        return UNKNOWN
    if isinstance(node, ast.Subscript):
        return _item(ctx, node, depth)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len" \
            and len(node.args) == 1 and not node.keywords:
        found, func = ctx.lookup("len")
        ok, value = _evaluate(ctx, node.args[0], depth + 1)
        if found and func is builtins.len and ok and type(value) in (*_CONTAINERS, str, bytes):
            return True, len(value)  # type: ignore[arg-type]
    return UNKNOWN


def _arithmetic(ctx: Context, node: ast.BinOp, depth: int) -> tuple[bool, object]:
    ok_l, left = _evaluate(ctx, node.left, depth + 1)
    ok_r, right = _evaluate(ctx, node.right, depth + 1)
    if not (ok_l and ok_r):
        return UNKNOWN
    numbers = (int, float, bool)
    if type(left) in numbers and type(right) in numbers:
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 10**6):
            return UNKNOWN
        if isinstance(node.op, ast.Mult) and max(abs(left), abs(right)) > 10**18:
            return UNKNOWN
        try:
            return True, _ARITHMETIC[type(node.op)](left, right)
        except Exception:
            return UNKNOWN
    if type(left) is str and type(right) is str and isinstance(node.op, ast.Add) and len(left) + len(right) < 10_000:
        return True, left + right
    return UNKNOWN


def _item(ctx: Context, node: ast.Subscript, depth: int) -> tuple[bool, object]:
    ok, container = _evaluate(ctx, node.value, depth + 1)
    if not ok:
        return UNKNOWN
    if isinstance(node.slice, ast.Slice):
        parts = []
        for part in (node.slice.lower, node.slice.upper, node.slice.step):
            if part is None:
                parts.append(None)
                continue
            ok, value = _evaluate(ctx, part, depth + 1)
            if not ok or type(value) is not int:
                return UNKNOWN
            parts.append(value)
        if type(container) in _SEQUENCES:
            return True, container[slice(*parts)]  # type: ignore[index]
        return UNKNOWN
    ok, index = _evaluate(ctx, node.slice, depth + 1)
    if not ok:
        return UNKNOWN
    if type(container) in _SEQUENCES and type(index) is int:
        try:
            return True, container[index]  # type: ignore[index]
        except IndexError:
            return UNKNOWN
    if type(container) is dict and is_plain(index) and len(container) <= _MAX_ITEMS \
            and all(type(k) in _SCALARS or type(k) is tuple for k in container):
        try:
            return (True, container[index]) if index in container else UNKNOWN
        except TypeError:
            return UNKNOWN
    return UNKNOWN


_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8


def safe_repr(value: object) -> str | None:
    """A short ``repr`` of a plain value; ``None`` for anything whose repr might run the student's code."""
    if not is_plain(value):
        return None
    try:
        return _REPR.repr(value)
    except Exception:
        return None


def describe(value: object) -> str:
    """A short, safe description of any value: its repr when plain, otherwise its type."""
    shown = safe_repr(value)
    if shown is not None:
        return shown
    return f"a {type(value).__name__} object"
