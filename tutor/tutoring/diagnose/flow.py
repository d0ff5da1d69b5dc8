"""The flow of a running program: recursion without an end, changing a collection while looping over it,
asking an iterator for more than it has."""

from __future__ import annotations

import ast
import collections
import sys

from .context import Context
from .model import Diagnosis
from .registry import rule
from .text import code, on, plain, snippet


@rule(RecursionError, kinds="recursion")
def recursion(ctx: Context) -> Diagnosis | None:
    counts: dict[str, int] = {}
    for frame in ctx.code_frames or [f[2] for f in ctx.frames]:
        counts[frame.f_code.co_name] = counts.get(frame.f_code.co_name, 0) + 1
    counts.pop("<module>", None)
    func = max(counts, key=counts.get) if counts else None  # type: ignore[arg-type]
    line = ctx.line
    # Point at the recursive call, the line that repeats: where the limit was hit varies (in 3.10 it can be
    # a comparison on the line above).
    repeated = collections.Counter(lineno for _, lineno, frame in ctx.frames if frame.f_code.co_name == func)
    if repeated:
        common = repeated.most_common(1)[0][0]
        line = common if 1 <= common <= len(ctx.lines) else line
    if func is None:
        return Diagnosis(
            "recursion", "Too many nested calls",
            "A function kept calling itself (or functions kept calling each other) until Python gave up. "
            "Recursion needs a base case: a situation where the function returns without calling itself again.",
            line, "Check that the recursive function has a base case, and that every call moves closer to it.")
    node = ctx.function_defs().get(func)
    has_if = node is not None and any(isinstance(n, (ast.If, ast.IfExp)) for n in ast.walk(node))
    params = [a.arg for a in node.args.args] if node is not None else []
    param = params[0] if params and params[0] != "self" else (params[1] if len(params) > 1 else None)
    if has_if:
        suggestion = (f"Check that each call of `{func}` gets closer to the base case"
                      f"{' (for example that `' + param + '` gets smaller)' if param else ''}, "
                      "and that the base case can really be reached.")
    else:
        suggestion = (f"Add a base case at the start of `{func}`: an `if` that returns a value without calling "
                      f"`{func}` again{' (for example when `' + param + '` is 0)' if param else ''}.")
    return Diagnosis(
        "recursion", f"The function {plain(func)} never stops calling itself",
        f"`{func}` calls itself, and every call makes another call, so they never end; after about "
        f"{sys.getrecursionlimit()} nested calls Python stops. A recursive function needs a base case where it "
        "returns without calling itself.",
        line, suggestion)


@rule(RuntimeError, kinds="changed-while-iterating")
def changed_while_iterating(ctx: Context) -> Diagnosis | None:
    m = ctx.match(r"(dictionary|Set|set|deque|OrderedDict) (?:changed size|keys changed|mutated) during iteration")
    if not m:
        return None
    what = {"Set": "set", "dictionary": "dictionary", "OrderedDict": "dictionary"}.get(m.group(1), m.group(1))
    line = ctx.line
    loop = None
    tree = ctx.tree
    if tree is not None and line is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.For) and node.lineno <= line <= (node.end_lineno or node.lineno):
                loop = node
    name = snippet(loop.iter) if loop is not None else None
    copy = f"list({name})" if name else "list(values)"
    return Diagnosis(
        "changed-while-iterating", f"The {what} changed while a loop went through it{on(line)}",
        f"A `for` loop goes through {code(name) if name else 'a ' + what}, and {ctx.where()} the loop adds or "
        f"removes items of that same {what}. Python can't keep its place in a {what} whose size changes under it.",
        line, f"Loop over a copy instead, like `for ... in {copy}:`, or collect the changes in a new {what} and "
              "apply them after the loop.")


@rule(StopIteration, kinds="stop-iteration")
def stop_iteration(ctx: Context) -> Diagnosis | None:
    calls = [c for c in ctx.nodes_on_line(ast.Call) if isinstance(c.func, ast.Name) and c.func.id == "next"]
    if not calls:
        return None
    what = snippet(calls[0].args[0]) if calls[0].args else "the iterator"
    return Diagnosis(
        "stop-iteration", f"The iterator has no more items{on(ctx.line)}",
        f"{ctx.where(True)} `next(...)` asks {code(what)} for its next item, but it has given all it had. An "
        "iterator (or a generator) goes through its items once.",
        ctx.line, "Give `next` a default for the end, like `next(items, None)`, or use a `for` loop, which stops by "
                  "itself.")

