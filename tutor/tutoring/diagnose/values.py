"""Values of the right type but the wrong content: text that is not a number, a value that is not in the
list, unpacking the wrong number of values, an empty list where one item was needed."""

from __future__ import annotations

import ast
import re

from .context import Context
from .model import Diagnosis
from .registry import rule
from .safe_eval import evaluate
from .text import code, on, propose, snippet


@rule(ValueError, kinds="bad-conversion")
def bad_conversion(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    m = re.match(r"invalid literal for int\(\) with base (\d+): (.+)$", msg, re.S)
    f = re.match(r"could not convert string to float: (.+)$", msg, re.S)
    if not (m or f):
        return None
    target = "int" if m else "float"
    raw = m.group(2) if m else f.group(1)
    try:
        text = ast.literal_eval(raw)
    except Exception:
        text = raw
    text = str(text)
    shown = code(repr(text))
    from_input = " `input()` always gives back text, exactly as it was typed." if "input(" in ctx.source else ""
    if m and m.group(1) != "10":
        hint = f"Not every character of it is a digit in base {m.group(1)}."
        suggestion = f"Check the text, or the base given to `int(text, {m.group(1)})`."
    elif not text.strip():
        hint = "The text is empty: perhaps nothing was typed before pressing Enter."
        suggestion = "Check that the text is not empty before converting it."
    elif target == "int" and re.fullmatch(r"\s*[-+]?\d*\.\d+\s*", text):
        hint = "It has a decimal point, and `int()` only reads whole numbers."
        suggestion = "Use `float(...)` for numbers with a decimal point (and `int(float(...))` for a whole number)."
    elif re.fullmatch(r"\s*[-+]?\d+,\d+\s*", text) and target == "float":
        hint = "It uses a comma as the decimal point; Python writes decimals with a `.`."
        suggestion = "Replace the comma first: `float(text.replace(',', '.'))`."
    elif re.fullmatch(r"\s*[-+]?[\d\s,_.]+\s*", text):
        hint = "It contains spaces or commas that `int()` and `float()` can't read."
        suggestion = "Remove the spaces or commas first, for example with `.replace(',', '')`."
    else:
        hint = "It contains characters that are not part of a number."
        suggestion = ("Check the text before converting it, for example with `.isdigit()`, "
                      "or convert only the part that is a number.")
    return Diagnosis(
        "bad-conversion", f"This text is not a number{on(line)}",
        f"{ctx.where(True)} `{target}()` is asked to turn {shown} into a number. {hint}{from_input}",
        line, suggestion)


@rule(ValueError, kinds="unpack-count")
def unpack_count(ctx: Context) -> Diagnosis | None:
    m = ctx.match(r"(too many|not enough) values to unpack \(expected (\d+)(?:, got (\d+))?\)")
    starred = ctx.match(r"not enough values to unpack \(expected at least (\d+), got (\d+)\)")
    if starred:  # `a, b, *rest = [1]`: the names without a star each need a value
        need, have = starred.groups()
        return Diagnosis(
            "unpack-count", f"Not enough values to unpack{on(ctx.line)}",
            f"{ctx.where(True)} the names on the left without a `*` need at least {need} values, but only {have} "
            "came. The starred name takes whatever is left over, possibly nothing, but the others each need one.",
            ctx.line, "Check what the right side holds (print it), or use fewer names without a `*`.")
    if not m:
        return None
    line = ctx.line
    got = f" but {m.group(3)} came" if m.group(3) else " but more came"
    for node in ctx.nodes_on_line(ast.For):
        if isinstance(node.target, ast.Tuple) and node.lineno == line:
            found, value = evaluate(ctx, node.iter)
            if found and isinstance(value, dict):
                loop = snippet(node.iter)
                names = ", ".join(snippet(e) for e in node.target.elts)
                return Diagnosis(
                    "unpack-count", f"A loop over a dictionary gives only its keys{on(line)}",
                    f"{ctx.where(True)} the loop splits each item of `{loop}` into {m.group(2)} names, but looping "
                    "over a dictionary gives one key at a time, so Python tried to split each key into "
                    f"{m.group(2)} names. `.items()` gives the pairs of key and value.",
                    line, f"Loop over the pairs with `.items()`: "
                          f"{propose(f'for {names} in {loop}.items():')}.")
    return Diagnosis(
        "unpack-count", f"{'Too many' if m.group(1) == 'too many' else 'Not enough'} values to unpack{on(line)}",
        f"{ctx.where(True)} the values on the right are split into {m.group(2)} names on the left{got}. "
        "The number of names must match the number of values.",
        line, "Use as many names on the left as there are values, or check what the right side holds.")


@rule(ValueError, kinds="missing-value")
def missing_value(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    remove = re.match(r"(list|tuple)\.(remove|index)\(x\): x not in (list|tuple)", msg)
    index = re.match(r"(.+) is not in (list|tuple)$", msg, re.S)
    substring = msg == "substring not found"
    if not (remove or index or substring):
        return None
    method = remove.group(2) if remove else ("index" if index else None)
    call = None
    for c in ctx.nodes_on_line(ast.Call):
        if isinstance(c.func, ast.Attribute) and c.func.attr in ("remove", "index") and len(c.args) >= 1:
            call = c
            method = method or c.func.attr
            break
    target = snippet(call.func.value) if call is not None else None
    value = snippet(call.args[0]) if call is not None else None
    found, shown = evaluate(ctx, call.args[0]) if call is not None else (False, None)
    what = code(repr(shown)) if found else code(value) if value else "the value"
    if substring:
        return Diagnosis(
            "missing-value", f"The text is not found{on(line)}",
            f"{ctx.where(True)} `.index(...)` looks for {what} inside {code(target) if target else 'a text'}, but "
            "it is not there, so `.index` stops with an error. The search is exact, including upper and lower case.",
            line, "Use `.find(...)` instead: it gives -1 when the part is missing; or check with `in` first.")
    where = code(target) if target else "the list"
    check = f"if {value} in {target}:" if value and target else None
    thing = "tuple" if (remove and remove.group(1) == "tuple") or (index and index.group(2) == "tuple") else "list"
    return Diagnosis(
        "missing-value", f"The value is not in the {thing}{on(line)}",
        f"{ctx.where(True)} `.{method or 'remove'}(...)` looks for {what} in {where}, but {where} doesn't hold it. "
        f"`.{method or 'remove'}` needs the value to be there, exactly (same type, same case).",
        line, (f"Check first with {propose(check)}, and do the `.{method}` only then." if check else
               "Check with `in` first that the value is there."))


@rule(ValueError, kinds="empty-sequence")
def empty_sequence(ctx: Context) -> Diagnosis | None:
    m = ctx.match(r"(max|min)\(\) (?:arg is an empty sequence|iterable argument is empty)") \
        or ctx.match(r"(mean|median|mode|stdev|variance|harmonic_mean|geometric_mean|fmean|pstdev|pvariance)\b.*"
                     r"(?:at least (one|two) data points?|no median|empty)")
    if not m:
        return None
    func, line = m.group(1), ctx.line
    if m.lastindex and m.lastindex >= 2 and m.group(2) == "two":
        return Diagnosis(
            "empty-sequence", f"{func}() needs at least two values{on(line)}",
            f"{ctx.where(True)} `{func}(...)` is given fewer than two values. A spread like the standard deviation "
            "measures how values differ from each other, so it needs at least two of them.",
            line, "Check how many values there are first, for example with `if len(values) >= 2:`.")
    return Diagnosis(
        "empty-sequence", f"{func}() of an empty list{on(line)}",
        f"{ctx.where(True)} `{func}(...)` is given a list (or other collection) with no items, so there is no "
        f"{'largest' if func == 'max' else 'smallest' if func == 'min' else func} value to give back. An empty list "
        "often means that a loop or a filter before this line found nothing.",
        line, f"Check that the list has items first (`if values:`), or give a value for that case: "
              f"`{func}(values, default=0)`." if func in ("max", "min") else
              "Check that the list has items before computing it, for example with `if values:`.")


@rule(ValueError, kinds="format-string")
def format_code(ctx: Context) -> Diagnosis | None:
    m = ctx.match(r"Unknown format code '(\w)' for object of type '(\w+)'")
    if not m:
        return None
    letter, type_name, line = m.group(1), m.group(2), ctx.line
    if type_name == "str":
        fix = "Turn the text into a number first (`float(...)` or `int(...)`), or drop the format code."
    elif letter == "d" and type_name == "float":
        fix = "Use `:.0f` for a decimal number without decimals, or `int(...)` to make it a whole number first."
    else:
        fix = "Use a format code that fits the value: `d` for whole numbers, `.2f` for decimals, `s` for text."
    return Diagnosis(
        "format-string", f"The format :{letter} doesn't fit a {type_name}{on(line)}",
        f"{ctx.where(True)} a value of type `{type_name}` is formatted with `:{letter}` (inside an f-string or "
        f"`.format`). The code `{letter}` only works for other types of value.",
        line, fix)


@rule(ValueError, kinds="bad-argument-value")
def bad_argument_value(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    if msg.startswith("empty range for randrange") or msg.startswith("empty range in randrange"):
        return Diagnosis(
            "bad-argument-value", f"randint() needs the smaller number first{on(line)}",
            f"{ctx.where(True)} a random number is asked for between two limits, but the first limit is bigger "
            "than the second, so there is no number between them. `randint(a, b)` picks a whole number from a to b.",
            line, "Give the smaller limit first, like `random.randint(1, 6)`.")
    if msg == "range() arg 3 must not be zero":
        return Diagnosis(
            "bad-argument-value", f"range() with a step of 0{on(line)}",
            f"{ctx.where(True)} `range(start, stop, step)` is given a step of 0, so it would never move on. The step "
            "is what is added to go from one number to the next.",
            line, "Use a step of 1 (or -1 to count down), or leave the step out.")
    if msg == "empty separator":
        return Diagnosis(
            "bad-argument-value", f"split() with an empty separator{on(line)}",
            f"{ctx.where(True)} `.split('')` is asked to split at an empty text, which is not a separator. A "
            "separator is at least one character, like `','` or `' '`.",
            line, "To get the characters one by one, use `list(text)`; to split at spaces, use `text.split()`.")
    m = re.match(r"chr\(\) arg not in range", msg)
    if m:
        return Diagnosis(
            "bad-argument-value", f"chr() is given a number outside the character codes{on(line)}",
            f"{ctx.where(True)} `chr(...)` gets a number that is not the code of any character (codes go from 0 "
            "to 1114111). `ord(c)` gives the code of a character, and `chr(n)` turns a code back into one.",
            line, "Check the number given to `chr(...)`; `ord(c)` gives the code of a character `c`.")
    return None
