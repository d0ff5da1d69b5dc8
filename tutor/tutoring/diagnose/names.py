"""Names: a misspelt or undefined name, a variable used before it has a value, a method without ``self.``."""

from __future__ import annotations

import ast
import builtins
import itertools
import re
import sys
import types
from collections.abc import Mapping

from .context import MAX_NAMES, Context
from .model import Diagnosis
from .registry import rule
from .text import close, code, on, plain, propose, python_hint

# Popular packages a student may import, and their names on PyPI when they differ.
POPULAR_MODULES = (
    "numpy", "pandas", "matplotlib", "seaborn", "scipy", "sklearn", "requests", "bs4", "PIL", "cv2", "torch",
    "tensorflow", "keras", "sympy", "plotly", "nltk", "statsmodels", "ipywidgets", "yaml", "tqdm", "networkx",
    "openpyxl", "pygame", "flask", "django", "transformers", "datasets", "altair", "bokeh", "polars",
    "pytest", "IPython", "jupyter", "numba", "xgboost", "lightgbm", "spacy", "gensim", "folium", "geopandas",
)
ALIASES = {"np": "numpy", "pd": "pandas", "plt": "matplotlib.pyplot", "sns": "seaborn", "tf": "tensorflow"}
_OTHER_LANGUAGES = {"true": "True", "false": "False", "null": "None", "none": "None", "nil": "None",
                    "NULL": "None", "println": "print", "echo": "print", "printf": "print", "length": "len",
                    "string": "str", "integer": "int", "Int": "int", "Str": "str", "Print": "print",
                    "Input": "input", "Len": "len", "boolean": "bool", "this": "self", "lenght": "len",
                    "lenth": "len", "size": "len", "count": "len", "elif_": "elif", "println_": "print"}


def _scope_has(scope: object, name: str) -> bool:
    try:
        return isinstance(scope, Mapping) and name in scope
    except Exception:
        return False


@rule(UnboundLocalError, kinds="unbound-local")
def unbound_local(ctx: Context) -> Diagnosis | None:
    m = re.search(r"(?:local variable '(\w+)'|cannot access local variable '(\w+)')", ctx.message)
    if not m:
        return None
    name = m.group(1) or m.group(2)
    frame = ctx.code_frames[-1] if ctx.code_frames else ctx.frame
    func = frame.f_code.co_name if frame is not None else None
    in_func = f" inside `{func}`" if func and func != "<module>" else ""
    outside = any(_scope_has(s, name) for s in (ctx.namespace, getattr(frame, "f_globals", {})))
    enclosing = _enclosing_with(ctx, frame, name)
    if enclosing:  # the nearest `name` is a local of the function this one was defined in
        explanation = (f"`{name}` is given a value{in_func}, so Python treats it as a new local variable of that "
                       f"function, separate from the `{name}` of `{enclosing}`, the function around it. "
                       f"{ctx.where(True)} the local `{name}` is used before it has a value.")
        suggestion = (f"Write `nonlocal {name}` as the first line of `{func}` to change the `{name}` of "
                      f"`{enclosing}`, or pass it in as a parameter and `return` the new value.")
    elif not outside and name in dir(builtins):  # `max = max(points)` inside a function
        explanation = (f"`{name}` is the name of a Python built-in, but{in_func} it is also given a value, so "
                       f"there it is a local variable for the whole function, even on the lines before. "
                       f"{ctx.where(True)} that local `{name}` is used before it has a value.")
        suggestion = f"Store the result under another name, like `{name}_value`, so that `{name}` stays the built-in."
    elif outside:
        explanation = (f"`{name}` is given a value{in_func}, so Python treats it as a new local variable of that "
                       f"function, separate from the `{name}` outside. {ctx.where(True)} the local `{name}` is "
                       "used before it has a value.")
        suggestion = (f"Pass `{name}` in as a parameter and `return` the new value, or write `global {name}` as "
                      f"the first line of `{func or 'the function'}` to change the outer one.")
    else:
        explanation = (f"`{name}` is a variable{in_func}, but {ctx.where()} it is used before any line has given "
                       "it a value. Python runs a function's lines from top to bottom.")
        suggestion = f"Give `{name}` a value before this line, for example a starting value at the top of the function."
    return Diagnosis("unbound-local", f"'{plain(name)}' is used before it gets a value{on(ctx.line)}",
                     explanation, ctx.line, suggestion)


def _enclosing_with(ctx: Context, frame: object, name: str) -> str | None:
    """The function (a frame of the traceback) that ``frame``'s function was defined in, if it has a local
    ``name``."""
    code_of = getattr(frame, "f_code", None)
    codes = [getattr(f, "f_code", None) for f in reversed(ctx.code_frames) if f is not frame]
    try:  # a closure called after its outer function returned: the outer one is a function of the notebook
        codes += [v.__code__ for v in itertools.islice(ctx.namespace.values(), MAX_NAMES)
                  if isinstance(v, types.FunctionType)]  # plain functions only: reading them runs no user code
    except Exception:
        pass
    for outer_code in codes:
        if isinstance(outer_code, types.CodeType) and any(c is code_of for c in outer_code.co_consts) \
                and name in outer_code.co_varnames:
            return outer_code.co_name
    return None


def _name(ctx: Context) -> str | None:
    name = getattr(ctx.error, "name", None)
    if isinstance(name, str):
        return name
    m = re.search(r"name '(\w+)' is not defined|local variable '(\w+)'", ctx.message)
    return (m.group(1) or m.group(2)) if m else None


@rule(UnboundLocalError, kinds="missing-self", order=10)
@rule(NameError, kinds="missing-self", order=10)
def missing_self(ctx: Context) -> Diagnosis | None:
    """Inside a method, a name that is really an attribute of the object: ``width`` for ``self.width``."""
    name = _name(ctx)
    frame = ctx.code_frames[-1] if ctx.code_frames else None
    if name is None or frame is None or frame.f_code.co_argcount < 1:
        return None
    first = frame.f_code.co_varnames[0]
    obj = frame.f_locals.get(first)
    if obj is None:
        return None
    try:  # a method of the object's class, not any function that takes a value
        is_method = first == "self" or any(
            getattr(vars(klass).get(frame.f_code.co_name), "__code__", None) is frame.f_code
            for klass in type(obj).__mro__[:-1])
    except Exception:
        is_method = False
    if not is_method:
        return None
    has = False
    try:
        fields = object.__getattribute__(obj, "__dict__")
        has = isinstance(fields, dict) and name in fields
    except Exception:
        pass
    try:
        has = has or any(name in vars(klass) for klass in type(obj).__mro__[:-1])
    except Exception:
        pass
    if not has:
        return None
    line = ctx.line
    method = frame.f_code.co_name
    return Diagnosis(
        "missing-self", f"'{plain(name)}' needs {first}. in front of it",
        f"Inside the method `{method}`, `{name}` alone is a local variable, and there is none. The object's own "
        f"`{name}` is reached through `{first}`, the object the method was called on.",
        line, f"Write {propose(first + '.' + name)} instead of `{name}` inside `{method}`.")


@rule(NameError, kinds=("name-before-assignment", "name-typo", "missing-import", "missing-quotes",
                        "name-not-defined"))
def name_error(ctx: Context) -> Diagnosis | None:
    name = _name(ctx)
    if name is None:
        return None
    line, shown = ctx.line, plain(name)
    other_language = _OTHER_LANGUAGES.get(name)
    later = [getattr(node, "lineno", 0) for n, node in ctx.assignments() if n == name]
    if later and not other_language and line is not None and min(later) > line:
        first = min(later)
        return Diagnosis(
            "name-before-assignment", f"'{shown}' is used before it gets a value{on(line)}",
            f"`{name}` gets its value on line {first}, but {ctx.where()} it is already used. A cell runs from top "
            "to bottom, so a variable must be given a value before the line that uses it.",
            line, f"Move the line that sets `{name}` above the line that uses it.")
    earlier = [n for n in later if line is not None and n < line]
    if earlier and not other_language:
        first = max(earlier)
        return Diagnosis(
            "name-not-defined", f"'{shown}' was never given a value{on(line)}",
            f"`{name}` gets its value on line {first}, but that line did not run: it is inside an `if` whose "
            "condition was false, a loop that ran zero times, or a function that was not called. So "
            f"{ctx.where()} `{name}` doesn't exist yet.",
            line, f"Give `{name}` a starting value before that block (for example `{name} = None` or `0`), so "
                  "it exists whichever way the code goes.")
    # `frame = Frame()`: `frame` gets its value only from this very line, which failed, so it doesn't exist
    stored = [(n, getattr(node, "lineno", 0)) for n, node in ctx.assignments()]
    only_here = {n for n, at in stored if at == line} - {n for n, at in stored if at != line}
    candidates = [n for n in ctx.known_names() if n not in only_here or ctx.lookup(n)[0]]
    guess = other_language or python_hint(ctx.message) or close(name, candidates, cutoff=0.75)
    if guess:
        return Diagnosis(
            "name-typo", f"Unknown name '{shown}'{on(line)}",
            f"Python doesn't know a name `{name}`. It looks like a small spelling mistake: names must be spelt "
            "exactly the same everywhere, including upper and lower case.",
            line, f"Did you mean `{guess}`?")
    owner = _module_with(name)
    if owner:
        return Diagnosis(
            "missing-import", f"'{shown}' needs to be imported from {plain(owner)}",
            f"`{name}` is a function of the module `{owner}`, and it can only be used after an `import` line has "
            "brought it in. No cell so far has run that import (or the kernel was restarted since).",
            line, f"Add {propose(f'from {owner} import {name}')} at the top of the cell, or "
                  f"{propose('import ' + owner)} and write `{owner}.{name}`.")
    module = name if name in getattr(sys, "stdlib_module_names", ()) or name in POPULAR_MODULES else None
    module = module or ALIASES.get(name)
    if module:
        statement = f"import {module}" if module == name else f"import {module} as {name}"
        return Diagnosis(
            "missing-import", f"'{shown}' needs to be imported first",
            f"`{name}` is a module, and a module can only be used after an `import` line has loaded it. "
            "No cell so far has run that import (or the kernel was restarted since).",
            line, f"Add {propose(statement)} at the top of the cell and run it again.")
    in_text_context = re.search(r"print\(|input\(|==|!=|=\s*" + re.escape(name) + r"\s*$", ctx.text)
    # `Tkinter.frame`, `Window()`: a name that is called, or has an attribute that text doesn't have, is an
    # object (a module, a class, a function), not a word without quotes
    dotted = re.search(r"(?<![\w.])" + re.escape(name) + r"\s*\.\s*(\w+)", ctx.text)
    an_object = (dotted is not None and not hasattr(str, dotted.group(1))) or re.search(
        r"(?<![\w.])" + re.escape(name) + r"\s*\(", ctx.text) is not None
    if re.fullmatch(r"[A-Za-z]{3,}", name) and (name[0].isupper() or in_text_context) and not an_object:
        return Diagnosis(
            "missing-quotes", f"Unknown name '{shown}'{on(line)}: text without quotes?",
            f"Python reads a word without quotes as the name of a variable, and there is no variable `{name}`. "
            "If you meant the word itself, it needs quotes around it.",
            line, f"Write {code(chr(34) + name + chr(34))} if you meant text; if it's a variable, give it a value "
                  "first.")
    inside = _local_of_function(ctx, name)
    if inside:
        return Diagnosis(
            "name-not-defined", f"'{shown}' exists only inside {plain(inside)}(){on(line)}",
            f"`{name}` gets its value inside the function `{inside}`, and a variable made inside a function exists "
            f"only while that function runs, and only there. {ctx.where(True)} it is used outside `{inside}`.",
            line, f"`return {name}` at the end of `{inside}`, and use what the call gives back, like "
                  f"{propose(f'{name} = {inside}()')}." if not _takes_arguments(ctx, inside) else
                  f"`return {name}` at the end of `{inside}`, and store what the call gives back in a variable.")
    return Diagnosis(
        "name-not-defined", f"Unknown name '{shown}'{on(line)}",
        f"Python doesn't know a name `{name}`: no line that has run so far gave it a value. A variable only "
        "exists after a line like `name = ...` has run, in this cell or an earlier one.",
        line, f"Check the spelling of `{name}`, or run the cell that defines it first.")


def _local_of_function(ctx: Context, name: str) -> str | None:
    """The function of this cell that gives ``name`` a value, when the failing line is outside it."""
    for func in ctx.function_defs().values():
        if ctx.line is not None and func.lineno <= ctx.line <= (func.end_lineno or func.lineno):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
                return func.name
    return None


def _takes_arguments(ctx: Context, func: str) -> bool:
    node = ctx.function_defs().get(func)
    return node is None or bool(node.args.args or node.args.posonlyargs or node.args.kwonlyargs)


# Modules whose functions beginners call without importing them, most common first.
_COMMON_MODULES = ("math", "random", "time", "statistics", "datetime", "string", "os", "json", "collections")


def _module_with(name: str) -> str | None:
    """The common module (already loaded: nothing is imported here) that has a function called ``name``."""
    if len(name) < 3:
        return None
    for module_name in _COMMON_MODULES:
        module = sys.modules.get(module_name)
        try:
            member = vars(module).get(name) if module is not None else None
        except TypeError:
            member = None
        if member is not None and callable(member) and not name.startswith("_"):
            return module_name
    return None
