"""Rarer syntax errors whose message already names the rule that was broken: say it for a beginner.

Python's message is exact here (``cannot delete literal``, ``/ must be ahead of *``, ``no binding for
nonlocal 'x' found``), so each rule matches the message, rewords it in plain terms and says what to change;
nothing is guessed beyond the message. Python 3.10 words some of them as a bare "invalid syntax" (mistakes
in a ``def`` line's parameters, for one): syntax_bare.py reads the tokens for those.
"""

from __future__ import annotations
import __future__

import difflib
import re

from .context import Context
from .model import Diagnosis
from .registry import rule
from .syntax import parts
from .text import on, propose

# ------------------------------------------------------------------------------------- parameters

PARAMETERS = "In a `def` line the parameters come in this order: plain names, then `*args` (or a lone `*`), " \
             "then names that must be given by name, then `**kwargs` last."


def bad_parameters(ctx: Context, what: str, fix: str) -> Diagnosis:
    return Diagnosis("bad-parameters", f"This def line's parameters break a rule{on(ctx.line)}",
                     f"{ctx.where(True)} {what} {PARAMETERS}", ctx.line, fix)


@rule(SyntaxError, kinds="bad-parameters", order=30)
def parameter_rules(ctx: Context) -> Diagnosis | None:
    msg = ctx.message
    if msg.startswith("arguments cannot follow var-keyword argument"):
        return bad_parameters(ctx, "something comes after `**...`, which collects every extra named value "
                                   "and so must be the last parameter.",
                              "Move the `**...` parameter to the end of the list.")
    if msg.startswith("/ must be ahead of *"):
        return bad_parameters(ctx, "a `/` comes after `*`. A `/` marks the end of the parameters that can only "
                                   "be given by position, so it must come before any `*`.",
                              "Move the `/` before the `*`, or remove it.")
    m = re.match(r"(/|\*|\*\*) (?:argument )?may appear only once", msg)
    if m:
        return bad_parameters(ctx, f"`{m.group(1)}` appears more than once; a `def` line may have only one.",
                              f"Keep only one `{m.group(1)}` in the parameter list.")
    if msg.startswith("named arguments must follow bare *"):
        return bad_parameters(ctx, "a lone `*` is not followed by any parameter. A lone `*` means \"the "
                                   "parameters after this must be given by name\", so at least one must follow.",
                              "Add a parameter after the `*`, or remove the `*`.")
    m = re.match(r"(Function|Lambda expression) parameters cannot be parenthesized", msg)
    if m:
        return parenthesized_parameters(ctx, "`def` line" if m.group(1) == "Function" else "`lambda`")
    return None


def parenthesized_parameters(ctx: Context, where: str) -> Diagnosis:
    return Diagnosis(
        "bad-parameters", f"Parameters can't be put in parentheses{on(ctx.line)}",
        f"{ctx.where(True)} the {where} has parameters grouped in parentheses, like `(a, b)`. Python 3 "
        "takes only plain names there, separated by commas; it no longer unpacks a pair in the parameter "
        "list.", ctx.line,
        "Take one parameter (like `pair`) and unpack it in the body: `a, b = pair`. Or list the names "
        "without the parentheses.")


# ------------------------------------------------------------------------------------- del

_DELETED = {"literal": "a fixed value (a literal)", "function call": "the result of a function call",
            "expression": "a calculation", "starred": "a starred `*name`", "named expression": "a `:=` expression",
            "True": "`True`", "False": "`False`", "None": "`None`", "f-string expression": "an f-string",
            "conditional expression": "an `... if ... else ...` expression", "ellipsis": "`...`",
            "comparison": "a comparison", "lambda": "a `lambda`", "await expression": "an `await`"}


def cannot_delete(ctx: Context, what: str | None) -> Diagnosis:
    """``what``: what ``del`` was given, for a beginner; ``None`` when Python said only "invalid syntax"."""
    given = (f"it is given {what}, which is not stored anywhere it could be removed from." if what else
             "something other than those, separated by commas, follows `del`.")
    return Diagnosis(
        "cannot-delete", f"del can't remove {what or 'this'}{on(ctx.line)}",
        f"`del` removes a variable (`del x`), an item (`del xs[0]`, `del d[\"key\"]`) or an attribute "
        f"(`del obj.name`). {ctx.where(True)} {given}", ctx.line,
        "Give `del` the variable or the item to remove, or remove the `del` line.")


@rule(SyntaxError, kinds="cannot-delete", order=30)
def delete_rules(ctx: Context) -> Diagnosis | None:
    m = re.match(r"cannot delete (.+?)\s*$", ctx.message)
    if m:
        return cannot_delete(ctx, _DELETED.get(m.group(1)))
    msg, line, err_text, offset = parts(ctx)
    if re.match(r"can(?:not|'t) use starred expression here", msg) and re.match(r"\s*del\b", err_text):
        return cannot_delete(ctx, _DELETED["starred"])
    return None


# ------------------------------------------------------------------------------------- global and nonlocal

@rule(SyntaxError, kinds="global-declaration", order=30)
def declaration_rules(ctx: Context) -> Diagnosis | None:
    msg, line, where = ctx.message, ctx.line, ctx.where(True)
    m = re.match(r"name '(\w+)' is (used prior to|assigned to before) (global|nonlocal) declaration", msg)
    if m:
        name, _, word = m.groups()
        return Diagnosis(
            "global-declaration", f"{word} {name} comes after {name} is used{on(line)}",
            f"A `{word} {name}` line must come before the function uses `{name}` at all. {where} it comes "
            f"after a line of the same function that already uses or sets `{name}`.", line,
            f"Move `{word} {name}` up to the first line of the function's body.")
    m = re.match(r"name '(\w+)' is parameter and (global|nonlocal)", msg)
    if m:
        name, word = m.groups()
        return Diagnosis(
            "global-declaration", f"{name} is a parameter and can't also be {word}{on(line)}",
            f"`{name}` is a parameter of the function, so it already is the function's own variable, filled "
            f"by each call. {where} the function also declares it `{word}`, which would make it someone else's.",
            line, f"Remove the `{word} {name}` line, or rename the parameter.")
    m = re.match(r"name '(\w+)' is nonlocal and global", msg)
    if m:
        name = m.group(1)
        return Diagnosis(
            "global-declaration", f"{name} is declared both global and nonlocal{on(line)}",
            f"`global {name}` means the notebook's variable, `nonlocal {name}` means the variable of an enclosing "
            f"function. {where} the function declares `{name}` as both; it can only be one.", line,
            "Keep only one of the two lines.")
    if msg.startswith("nonlocal declaration not allowed at module level"):
        return Diagnosis(
            "global-declaration", f"nonlocal outside a function{on(line)}",
            f"`nonlocal` is for a function inside another function: it names a variable of the outer function. "
            f"{where} it is not inside any function.", line,
            "Remove the `nonlocal` line: outside functions, variables need no declaration.")
    m = re.match(r"no binding for nonlocal '(\w+)' found", msg)
    if m:
        name = m.group(1)
        return Diagnosis(
            "global-declaration", f"No outer function has a variable {name}{on(line)}",
            f"`nonlocal {name}` names a variable of an enclosing function (a `def` around this one). "
            f"{where} no enclosing function sets `{name}`.", line,
            f"If `{name}` is a variable of the notebook (outside every function), write `global {name}` instead.")
    m = re.match(r"annotated name '(\w+)' can't be (global|nonlocal)", msg)
    if m:
        name, word = m.groups()
        return Diagnosis(
            "global-declaration", f"A {word} name can't have a type annotation{on(line)}",
            f"{where} `{name}` gets a type annotation (`{name}: ...`) in a function that declares it `{word}`. "
            "Python doesn't allow annotating a name that belongs to somewhere else.", line,
            f"Remove the annotation: write `{name} = ...`.")
    return None


# ------------------------------------------------------------------------------------- __future__

@rule(SyntaxError, kinds="future-import", order=30)
def future_rules(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    m = re.match(r"future feature (\S+) is not defined", msg)
    if m:
        name = m.group(1)
        close = difflib.get_close_matches(name, __future__.all_feature_names, n=1)
        fix = f"Did you mean {propose('from __future__ import ' + close[0])}?" if close else \
            "Remove this line: it is not needed to run the rest of the code."
        return Diagnosis(
            "future-import", f"{name} is not a __future__ feature{on(line)}",
            "`from __future__ import ...` accepts only the names of Python's own planned features (such as "
            f"`annotations`). `{name}` is not one of them.", line, fix)
    if msg.startswith("from __future__ imports must occur at the beginning of the file"):
        return Diagnosis(
            "future-import", f"from __future__ must come first{on(line)}",
            f"A `from __future__ import` changes how the whole cell is read, so it must be the cell's first "
            f"statement (only comments may come before it). {ctx.where(True)} other code comes before it.",
            line, "Move this line to the very top of the cell.")
    if msg.strip() == "not a chance":
        return Diagnosis(
            "future-import", "Python will not use braces for blocks",
            "`from __future__ import braces` is a joke built into Python: its answer means that braces `{ }` "
            "will never mark blocks. A block is the indented lines below a line ending with `:`.", line,
            "Remove this line and indent the lines of each block instead.")
    return None


# ------------------------------------------------------------------------------------- := and *

@rule(SyntaxError, kinds="walrus-misuse", order=30)
def walrus_rules(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    m = re.match(r"cannot use assignment expressions with (.+?)\s*$", msg)
    if m:
        return Diagnosis(
            "walrus-misuse", f"The left side of := must be a name{on(line)}",
            f"`:=` stores a value in a variable, so on its left comes a plain variable name. {ctx.where(True)} "
            f"its left side is {_DELETED.get(m.group(1), 'something else')}.", line,
            "To compare two values, use `==`; to store a value, put a variable name before `:=`.")
    m = re.match(r"(?:assignment expression cannot rebind comprehension iteration variable|"
                 r"comprehension inner loop cannot rebind assignment expression target) '(\w+)'", msg)
    if m:
        name = m.group(1)
        return Diagnosis(
            "walrus-misuse", f"{name} is used both by := and by the comprehension's for{on(line)}",
            f"{ctx.where(True)} a comprehension uses `{name}` as a loop variable of a `for` and also stores a "
            f"value in it with `:=`. Python doesn't allow one name for both in a comprehension.", line,
            "Use a different name on one of the two sides.")
    return None


@rule(SyntaxError, kinds="starred-misuse", order=31)
def starred_rules(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    if not re.match(r"can(?:not|'t) use starred expression here|starred assignment target must be in a list "
                    r"or tuple|iterable unpacking cannot be used in comprehension|cannot use a starred "
                    r"expression in a dictionary value", msg):
        return None
    return Diagnosis(
        "starred-misuse", f"A * unpacks a value where only one value fits{on(line)}",
        "A `*` in front of a value spreads its items out as separate values. That works where several values "
        "can go: in a call (`print(*xs)`), in a list or tuple (`[*xs, 4]`), or on the left of `=` beside other "
        f"names (`first, *rest = xs`). {ctx.where(True)} the `*` is in a place that takes a single value.",
        line, "Remove the `*`, or put the starred value inside a list `[...]` or among other names.")


# ------------------------------------------------------------------------------------- comprehensions, imports

@rule(SyntaxError, kinds="comprehension-syntax", order=30)
def comprehension_rules(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    if msg.startswith("did you forget parentheses around the comprehension target"):
        return Diagnosis(
            "comprehension-syntax", f"The pair in this comprehension needs parentheses{on(line)}",
            f"{ctx.where(True)} a comprehension makes two values, separated by a comma, for each item. Before "
            "`for`, the two need parentheses so that Python knows they form one pair: `[(i, i * i) for i in xs]`.",
            line, "Put parentheses around the values before `for`.")
    if msg.startswith("Generator expression must be parenthesized"):
        return Diagnosis(
            "comprehension-syntax", f"The for ... in ... of this call needs its own parentheses{on(line)}",
            f"{ctx.where(True)} a call gets a `... for ... in ...` expression and other arguments too. The "
            "`for` part then needs parentheses of its own, so Python can tell where it ends: "
            "`f((x for x in xs), 1)`; or make it a list: `f([x for x in xs], 1)`.",
            line, "Put parentheses or square brackets around the `... for ... in ...` part.")
    return None


@rule(SyntaxError, kinds="import-syntax", order=30)
def import_rules(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    if msg.startswith("trailing comma not allowed without surrounding parentheses"):
        return Diagnosis(
            "import-syntax", f"The import line ends with a comma{on(line)}",
            f"{ctx.where(True)} the `import` line ends with `,`, so Python expects one more name after it. "
            "Without parentheses around the names, the list can't end with a comma.",
            line, "Remove the last comma, or add the name you meant to import.")
    if msg.startswith("Did you mean to use 'from ... import ...' instead?"):
        return import_from(ctx, err_text, line)
    return None


def import_from(ctx: Context, err_text: str, line: int | None) -> Diagnosis:
    """``import name from module``: Python 3.12+ says so, 3.10-3.11 say only "invalid syntax"."""
    m = re.match(r"\s*import\s+([\w., ]+?)\s+from\s+([\w.]+)\s*(#.*)?$", err_text)
    fix = (f"Write {propose(f'from {m.group(2)} import {m.group(1)}', replaces_line=line)}." if m
           else "Write `from module import name`.")
    return Diagnosis(
        "import-syntax", f"In Python, from comes before import{on(line)}",
        f"{ctx.where(True)} the line reads `import ... from ...`, as in JavaScript. Python writes it the other "
        "way round: `from module import name`.", line, fix)


# ------------------------------------------------------------------------------------- the rest

@rule(SyntaxError, kinds="incomplete-expression", order=31)
def dict_value_missing(ctx: Context) -> Diagnosis | None:
    if not ctx.message.startswith("expression expected after dictionary key and ':'"):
        return None
    return Diagnosis(
        "incomplete-expression", f"A dictionary key has no value{on(ctx.line)}",
        f"In a dictionary each key is followed by `:` and its value, as in `{{\"a\": 1}}`. {ctx.where(True)} a key "
        "and its `:` are followed by a comma or the closing brace, without a value.", ctx.line,
        "Write the value after the `:`, or remove the key.")


@rule(SyntaxError, kinds="keyword-argument-name", order=31)
def keyword_argument_name(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    if not msg.startswith('expression cannot contain assignment, perhaps you meant "=="?'):
        return None
    quoted = re.search(r"""\(\s*(['"])\w+\1\s*=(?!=)""", err_text)
    detail = (" Here the name is written in quotes; for a dictionary with text keys write `{\"key\": 1}` (or "
              "`dict(key=1)` without quotes)." if quoted else "")
    return Diagnosis(
        "keyword-argument-name", f"Only a plain name can come before = in a call{on(line)}",
        f"Inside a call's parentheses, `name=value` gives a value to the parameter called `name`, so the left "
        f"side of `=` must be a plain name. {ctx.where(True)} it is something else.{detail}", line,
        "To compare, use `==`; to name an argument, write the name without quotes or dots.")


@rule(SyntaxError, kinds="assign-to-expression", order=49)
def literal_loop_variable(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    m = re.match(r"""(\s*)for\s+(['"])(\w+)\2\s+in\b(.*)$""", err_text)
    if not msg.startswith("cannot assign to literal") or not m:
        return None
    return Diagnosis(
        "assign-to-expression", f"The variable of a for loop can't be in quotes{on(line)}",
        f"After `for` comes the name of a variable, which takes each item in turn. {ctx.where(True)} it is a "
        "string in quotes, a fixed value that can't hold anything.", line,
        f"Write the name without quotes: {propose(f'for {m.group(3)} in{m.group(4)}', replaces_line=line)}.")


@rule(SyntaxError, kinds="too-deep", order=30)
def too_deep(ctx: Context) -> Diagnosis | None:
    m = re.match(r"too many (statically nested blocks|nested parentheses)", ctx.message)
    if not m:
        return None
    what = "blocks inside blocks" if m.group(1).startswith("statically") else "brackets inside brackets"
    return Diagnosis(
        "too-deep", f"Too many {what}{on(ctx.line)}",
        f"Python has a limit on how many {what} one piece of code may have, and this cell goes past it. "
        "Code nested this deeply is also hard for people to read.",
        ctx.line, "Move the inner part into a function of its own, or use a loop instead of repeating the "
                  "nesting.")
