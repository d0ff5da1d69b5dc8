"""Calls: calling something that is not a function, and giving a function the wrong arguments."""

from __future__ import annotations

import ast
import inspect
import re
import types

from .attributes import misspelt_init
from .context import BUILTIN_NAMES, Context
from .model import Diagnosis
from .registry import rule
from .safe_eval import evaluate
from .text import close, code, on, plain, plural, propose, snippet, type_word


def signature(ctx: Context, func: str) -> str | None:
    """The signature of the student's function ``func`` (dotted for methods), when it can be read."""
    parts = func.split(".")
    found, value = ctx.lookup(parts[0])
    if not found:
        return None
    try:
        for part in parts[1:]:
            value = inspect.getattr_static(value, part)
        if not isinstance(value, types.FunctionType):
            return None
        sig = inspect.signature(value)
        if len(parts) > 1 and sig.parameters:  # a method: the object fills the first parameter
            sig = sig.replace(parameters=list(sig.parameters.values())[1:])
        return str(sig)
    except Exception:
        return None


@rule(TypeError, kinds=("not-callable", "module-not-callable"), order=40)
def not_callable(ctx: Context) -> Diagnosis | None:
    m = ctx.match(r"'(\w+)' object is not callable")
    if not m:
        return None
    type_name, line = m.group(1), ctx.line
    calls = ctx.nodes_on_line(ast.Call)
    if type_name == "module":
        hint = re.search(r"Did you mean: '([\w.]+)\(\.\.\.\)'\?", ctx.message)
        for call in calls:
            if not isinstance(call.func, (ast.Name, ast.Attribute)):
                continue
            found, module = evaluate(ctx, call.func)
            if not (found and isinstance(module, types.ModuleType)):
                continue
            name = snippet(call.func)
            short = name.split(".")[-1]
            same = getattr(module, short, None)
            if hint:
                inside = hint.group(1)
            elif callable(same):
                inside = f"{name}.{short}"
            else:
                inside = None
            suggestion = (f"Call the function or class inside it: {propose(inside + '(...)')}, or import it with "
                          f"{propose('from ' + module.__name__ + ' import ' + short)}." if inside else
                          f"Look up what `{name}` offers with `dir({name})`, and call one of those.")
            return Diagnosis(
                "module-not-callable", f"The module {plain(name)} can't be called{on(line)}",
                f"{ctx.where(True)} `{name}(...)` calls a module. A module is a collection of functions and "
                f"classes; you call one of those, not the module itself"
                + (f" (the module `{module.__name__}` has a `{short}` inside it)." if inside else "."),
                line, suggestion)
        return None
    for call in calls:
        func = call.func
        if isinstance(func, ast.Name):
            name = func.id
            found, value = ctx.lookup(name)
        elif isinstance(func, ast.Attribute):
            name = snippet(func)
            found, value = evaluate(ctx, func)
        else:
            continue
        if not found or callable(value) or type(value).__name__ != type_name:
            continue
        if isinstance(func, ast.Name) and name in BUILTIN_NAMES:
            set_on = [getattr(node, "lineno", None) for n, node in ctx.assignments() if n == name]
            where_set = f" on line {set_on[0]}" if set_on and set_on[0] else ""
            return Diagnosis(
                "not-callable", f"'{name}' is no longer the built-in function{on(line)}",
                f"A variable named `{name}` was created{where_set or ' earlier'}, and it hides Python's built-in "
                f"`{name}()` function. So {ctx.where()} `{name}(...)` tries to call {type_word(type_name)}, "
                "which is not a function.",
                line, f"Rename your variable (for example `my_{name}`) everywhere, then run `del {name}` once to get "
                      f"the built-in `{name}()` back.")
        replaced = _replaced_function(ctx, name) if isinstance(func, ast.Name) else None
        if replaced:
            return Diagnosis(
                "not-callable", f"'{name}' no longer holds the function{on(line)}",
                f"`{name}` was your function, but line {replaced} stored another value in the same name, "
                f"{type_word(type_name)}. So {ctx.where()} `{name}(...)` tries to call that value, which is not a "
                "function.",
                line, f"Use a different name for the result, like `{name}_value = {name}(...)`, and run the cell "
                      f"that defines `{name}` again.")
        if type_name in ("int", "float") and isinstance(func, ast.Name):
            return Diagnosis(
                "not-callable", f"'{name}' is a number, not a function{on(line)}",
                f"{ctx.where(True)} `{name}(...)` uses `{name}` like a function, but it holds "
                f"{type_word(type_name)}. In Python, brackets right after a value mean \"call it\".",
                line, f"If you meant to multiply, write the `*` explicitly: `{name} * (...)`.")
        index = snippet(call.args[0]) if len(call.args) == 1 and not call.keywords else None
        suggestion = f"Check what `{name}` holds."
        if type_name in ("list", "tuple", "dict", "str"):
            suggestion = (f"To get an item, use square brackets: {propose(name + '[' + index + ']')}." if index else
                          f"To get an item, use square brackets, like `{name}[0]`.")
        return Diagnosis(
            "not-callable", f"'{plain(name)}' can't be called{on(line)}",
            f"{ctx.where(True)} `{name}(...)` uses `{name}` like a function, but it holds {type_word(type_name)}. "
            "Brackets right after a value mean \"call it\".",
            line, suggestion)
    literal = [c for c in calls if isinstance(c.func, (ast.Constant, ast.Tuple, ast.List, ast.Dict, ast.Set,
                                                       ast.JoinedStr, ast.BinOp))]
    if literal:
        shown = snippet(literal[0].func)
        return Diagnosis(
            "not-callable", f"A value is followed by brackets{on(line)}",
            f"{ctx.where(True)} {code(shown)} is followed by brackets `(...)`, so Python tries to call "
            f"{type_word(type_name)} like a function. Usually an operator or a comma is missing, as in `2 * (3)` or "
            "`(1, 2), (3, 4)`.",
            line, "Add the missing `*` or `,` before the `(`.")
    return None  # something called inside a library; we can't tell what


_ARGS = (
    re.compile(r"([\w.<>]+)\(\) takes (\d+|from \d+ to \d+) positional arguments? but (\d+) (?:were|was) given"),
    re.compile(r"([\w.<>]+)\(\) takes exactly one argument \((\d+) given\)"),
    re.compile(r"([\w.<>]+)\(\) takes no arguments \((\d+) given\)"),
    re.compile(r"([\w.<>]+)\(\) takes at most (\d+) arguments? \((\d+) given\)"),
    re.compile(r"([\w.<>]+) expected (?:at most )?(\d+) arguments?, got (\d+)"),
    re.compile(r"([\w.<>]+) expected at least (\d+) arguments?, got (\d+)"),
)


@rule(TypeError, kinds=("wrong-arg-count", "misspelt-init"), order=40)
def argument_count(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    missing = re.match(r"([\w.<>]+)\(\) missing (\d+) required (positional|keyword-only) arguments?: (.+)", msg)
    no_args = re.match(r"(\w+)\(\) takes no arguments$", msg)
    counted = None
    for pattern in _ARGS:
        counted = pattern.match(msg)
        if counted:
            break
    if not (missing or no_args or counted):
        return None
    func = (missing or no_args or counted).group(1)
    short = func.split(".")[-1]
    shown = short if short != "__init__" else func.split(".")[-2] if "." in func else short
    sig = signature(ctx, func)
    sig_text = f" Its definition is {code(shown + sig)}." if sig else ""
    if no_args:
        found, klass = ctx.lookup(func)
        init = misspelt_init(klass) if found else None
        if init:
            return Diagnosis(
                "misspelt-init", f"{plain(func)}() takes no arguments: __init__ is misspelt",
                f"The class `{func}` has a method `{init}`, which looks like `__init__` but isn't spelt the same. "
                f"So `{func}` has no `__init__` to take the values given{on(line)}.",
                line, f"Rename `{init}` to `__init__` (two underscores on each side).")
        return Diagnosis(
            "wrong-arg-count", f"{plain(func)}() takes no arguments{on(line)}",
            f"{ctx.where(True)} `{func}(...)` is given values, but `{func}` has no `__init__` method that takes them"
            " (or is defined with no parameters). The values given when an object is made go to `__init__`.",
            line, f"Add `def __init__(self, ...):` with the parameters it needs to the class `{func}`, or call it "
                  f"with no values: `{func}()`.")
    if missing:
        names = [a.strip(" '") for a in re.split(r",\s*|\s+and\s+", missing.group(4)) if a.strip(" '")]
        listed = " and ".join(", ".join(f"`{a}`" for a in names).rsplit(", ", 1))
        if names[:1] == ["self"] and "." in func:
            klass = func.split(".")[-2]
            return Diagnosis(
                "wrong-arg-count", f"{plain(short)}() is called on the class, not on an object{on(line)}",
                f"{ctx.where(True)} `{short}` is called on the class `{klass}` itself. A method works on one object "
                f"made from the class, which it receives as `self`, and here there is none.",
                line, f"Make an object first and call the method on it, like `{klass.lower()} = {klass}(...)` and "
                      f"then `{klass.lower()}.{short}()`.")
        n = missing.group(2)
        return Diagnosis(
            "wrong-arg-count", f"{plain(shown)}() is missing {plural(int(n), 'argument')}{on(line)}",
            f"{ctx.where(True)} `{shown}` is called without a value for {listed}.{sig_text} Each parameter without "
            "a default needs a value in the call, in the same order as the definition.",
            line, f"Pass a value for {listed} when you call `{shown}`.")
    pattern = counted.re
    if pattern is _ARGS[1]:
        takes, given = "1", counted.group(2)
    elif pattern is _ARGS[2]:
        takes, given = "0", counted.group(2)
    else:
        takes, given = counted.group(2), counted.group(3)
    first = _first_parameter(ctx, func)
    params = ", ".join(_parameters(ctx, func))
    if short == "__init__" and takes.isdigit() and int(given) == int(takes) + 1 and first not in (None, "self"):
        return Diagnosis(
            "wrong-arg-count", f"{plain(shown)}.__init__ has no self parameter",
            f"Making an object passes the new object to `__init__` as its first value, so `{func}` was given "
            f"{plural(int(given), 'value')}. Its first parameter, `{first}`, takes the object instead of the value "
            "you meant for it.",
            line, f"Add `self` as the first parameter: {propose('def __init__(self, ' + params + '):')}")
    if "." in func and takes.isdigit() and int(given) == int(takes) + 1 and short != "__init__" and sig is not None:
        return Diagnosis(
            "wrong-arg-count", f"{plain(shown)}() is missing its self parameter",
            f"A method receives the object it is called on as its first argument, so "
            f"`{func}` was given {plural(int(given), 'argument')} but only accepts {takes}.{sig_text}",
            line, f"Add `self` as the first parameter in the definition of `{short}`.")
    fewer = pattern is _ARGS[5] or (takes.isdigit() and int(given) < int(takes))
    return Diagnosis(
        "wrong-arg-count", f"{plain(shown)}() is given too {'few' if fewer else 'many'} arguments{on(line)}",
        f"{ctx.where(True)} `{shown}` is called with {plural(int(given), 'value')}, but it takes "
        f"{'at least ' if pattern is _ARGS[5] else ''}{takes.replace('from ', 'from ')}.{sig_text} Each value in "
        "the call fills one parameter.",
        line, f"Call `{shown}` with {'at least ' if pattern is _ARGS[5] else ''}{takes.replace('from ', '')} "
              f"argument{'s' if takes != '1' else ''}"
              + ("." if sig is None else ", or add a parameter to its definition if it really needs more."))


@rule(TypeError, kinds=("unexpected-keyword", "duplicate-argument"), order=40)
def keyword_arguments(ctx: Context) -> Diagnosis | None:
    line = ctx.line
    m = ctx.match(r"([\w.<>]+)\(\) got an unexpected keyword argument '(\w+)'")
    k = ctx.match(r"'(\w+)' is an invalid keyword argument for ([\w.]+)\(\)")
    if m or k:
        func, name = m.groups() if m else (k.group(2), k.group(1))
        if func == "sort" and "sorted(" in ctx.text and ".sort(" not in ctx.text:
            func = "sorted"  # sorted() passes its keywords on to list.sort, whose name is in the message
        short = func.split(".")[-1]
        shown = func.split(".")[-2] if short == "__init__" and "." in func else short
        sig = signature(ctx, func)
        if sig is None:
            sig = _builtin_signature(func)
        params = re.findall(r"(\w+)(?=\s*[:=,)])", sig or "")
        guess = close(name, params, cutoff=0.6)
        return Diagnosis(
            "unexpected-keyword", f"{plain(shown)}() has no parameter named '{plain(name)}'{on(line)}",
            f"{ctx.where(True)} `{shown}` is called with `{name}=...`, but it has no parameter called `{name}`."
            + (f" Its definition is {code(shown + sig)}." if sig else " Names given with `=` must be spelt exactly "
               "as the function's parameters."),
            line, f"Did you mean `{guess}=`?" if guess else
            f"Use one of the names in the definition of `{shown}`, or pass the value without a name.")
    m = ctx.match(r"([\w.<>]+)\(\) got multiple values for (?:keyword )?argument '(\w+)'")
    if m:
        func, name = m.groups()
        short = func.split(".")[-1]
        shown = func.split(".")[-2] if short == "__init__" and "." in func else short
        return Diagnosis(
            "duplicate-argument", f"{plain(shown)}() gets two values for '{plain(name)}'{on(line)}",
            f"{ctx.where(True)} `{shown}` gets a value for `{name}` by position and another one by name "
            f"(`{name}=...`). Values without names fill the parameters in order, so `{name}` was already taken.",
            line, f"Give `{name}` only one value: drop `{name}=...`, or drop the value in its position.")
    return None


def _builtin_signature(func: str) -> str | None:
    """The signature of a built-in function or method of a built-in type (read from its documentation)."""
    import builtins

    short = func.split(".")[-1]
    candidates = [getattr(builtins, short, None)] if "." not in func else []
    owner = getattr(builtins, func.split(".")[0], None) if "." in func else None
    candidates += [getattr(t, short, None) for t in ((owner,) if isinstance(owner, type) else (list, str, dict))]
    for value in candidates:
        if value is None or not callable(value):
            continue
        try:
            sig = inspect.signature(value)
        except (TypeError, ValueError):
            continue
        params = [p for p in sig.parameters.values() if p.name != "self"]
        return str(sig.replace(parameters=params))
    return None


def _replaced_function(ctx: Context, name: str) -> int | None:
    """The line that stored a new value in ``name`` after this cell defined it as a function (or ``f = f(...)``)."""
    tree = ctx.tree
    if tree is None:
        return None
    defined = any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in ast.walk(tree))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            calls_itself = isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name) \
                and node.value.func.id == name
            if defined or calls_itself:
                return node.lineno
    return None


def _parameters(ctx: Context, func: str) -> list[str]:
    """The names of the positional parameters of the student's function ``func`` (dotted for methods)."""
    parts = func.split(".")
    found, value = ctx.lookup(parts[0])
    try:
        for part in parts[1:]:
            value = inspect.getattr_static(value, part)
        code_ = value.__code__ if found and isinstance(value, types.FunctionType) else None
    except Exception:
        return []
    return list(code_.co_varnames[: code_.co_argcount]) if code_ is not None else []


def _first_parameter(ctx: Context, func: str) -> str | None:
    names = _parameters(ctx, func)
    return names[0] if names else None
