"""Types that don't fit together: text and numbers, ``None``, a value where a number or text was needed."""

from __future__ import annotations

import ast
import re

from .context import Context
from .model import Diagnosis
from .none_values import KINDS as NONE_KINDS
from .none_values import none_rule
from .registry import rule
from .safe_eval import evaluate
from .text import capital, code, on, plain, propose, snippet, type_word

_NUMBERS = {"int", "float", "bool", "complex"}


@rule(TypeError, kinds=NONE_KINDS, order=10)
def none_value(ctx: Context) -> Diagnosis | None:
    msg = ctx.message
    if "'NoneType'" not in msg and '"NoneType"' not in msg and "type NoneType" not in msg:
        return None
    m = re.search(r"unsupported operand type\(s\) for (\S+?):", msg)
    if m:
        return none_rule(ctx, f"`{m.group(1)}` can't work with `None`")
    if msg.startswith("can only concatenate"):
        return none_rule(ctx, "`+` can't join `None` to text")
    if "not subscriptable" in msg:
        return none_rule(ctx, "`None` can't be indexed with `[...]`")
    if "not iterable" in msg or "cannot unpack" in msg:
        return none_rule(ctx, "`None` can't be looped over or unpacked")
    if "not supported between" in msg:
        return none_rule(ctx, "`None` can't be compared")
    if "has no len()" in msg:
        return none_rule(ctx, "`None` has no length")
    return none_rule(ctx, "`None` was used like a value")


def _input_note(ctx: Context) -> str:
    return " Remember that `input()` always gives back text, even when digits are typed." if "input(" in ctx.source \
        else ""


def _words(ctx: Context) -> list[str]:
    """The texts used with an operator on the line that are not numbers (``int("abc")`` would fail too)."""
    found = []
    for node in ctx.nodes_on_line((ast.BinOp, ast.AugAssign)):
        for side in (node.left, node.right) if isinstance(node, ast.BinOp) else (node.target, node.value):
            ok, value = evaluate(ctx, side)
            if ok and isinstance(value, str):
                try:
                    float(value)
                except ValueError:
                    found.append(value)
    return found


@rule(TypeError, kinds="type-mismatch", order=50)
def operator_types(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    m = re.match(r'can only concatenate (\w+) \(not "(\w+)"\) to (\w+)', msg)
    if m:
        op, left, right = "+", m.group(1), m.group(2)
    else:
        m = re.match(r"unsupported operand type\(s\) for (\S+?): '(\w+)' and '(\w+)'", msg)
        if m:
            op, left, right = m.groups()
        else:
            m = re.match(r"can't multiply sequence by non-int of type '(\w+)'", msg)
            if not m:
                return None
            op, left, right = "*", "sequence", m.group(1)
    pair = {left, right}
    title = f"These types can't be combined with {op}{on(line)}"
    if op == "*" and left == "sequence":
        if right == "str":
            return Diagnosis(
                "type-mismatch", f"Two texts can't be multiplied{on(line)}",
                f"{ctx.where(True)} `*` is used between two texts. Text can be repeated a whole number of times "
                f"(`'ab' * 3`), but two texts can't be multiplied.{_input_note(ctx)}",
                line, "Turn the texts into numbers with `int(...)` or `float(...)` before multiplying."
                if not _words(ctx) else "To repeat a text, multiply it by a whole number, like `'ab' * 3`; "
                                        "to multiply numbers, use numbers (or texts of digits turned into numbers).")
        return Diagnosis(
            "type-mismatch", f"Text or a list can only be repeated a whole number of times{on(line)}",
            f"{ctx.where(True)} a text or a list is multiplied by {type_word(right)}. Multiplying a text or a "
            "list repeats it, so the number must be a whole number, like `'ab' * 3`."
            + _input_note(ctx),
            line, "If you meant arithmetic, turn the text into a number with `float(...)` first; to repeat, use "
                  "a whole number (`int(...)`).")
    if op in ("@", "@="):
        return Diagnosis(
            "type-mismatch", f"@ is matrix multiplication{on(line)}",
            f"{ctx.where(True)} `@` is used with {type_word(left)} and {type_word(right)}. `@` multiplies "
            "matrices (for example numpy arrays); it doesn't work on these values.",
            line, "To multiply two numbers, use `*`.")
    if "str" in pair and pair & _NUMBERS:
        number = (pair & _NUMBERS).pop()
        if "sum(" in ctx.text:
            return Diagnosis(
                "type-mismatch", f"sum() adds numbers, not text{on(line)}",
                f"{ctx.where(True)} `sum(...)` adds the items one by one, starting from 0, and one of the items is "
                "text. `sum` only works on numbers.",
                line, "Turn the items into numbers first (for example `sum(int(x) for x in values)`); to join "
                      "texts, use `''.join(values)`.")
        if op == "+":
            return Diagnosis(
                "type-mismatch", f"Text and a number are combined{on(line)}",
                f"{ctx.where(True)} {type_word('str')} and {type_word(number)} are combined with `+`. "
                "Python won't guess whether you mean text or arithmetic, so both sides must be the same kind."
                + _input_note(ctx),
                line, "To join them as text, wrap the number in `str(...)` (or use an f-string like "
                      "`f\"age: {age}\"`); for arithmetic, turn the text into a number with `int(...)` or "
                      "`float(...)`.")
        words = _words(ctx)
        return Diagnosis(
            "type-mismatch", f"Arithmetic on text{on(line)}",
            f"{ctx.where(True)} `{op}` is used with {type_word(left)} and {type_word(right)}. Arithmetic needs "
            "numbers on both sides, and text is not a number even when it holds digits." + _input_note(ctx),
            line, "Turn the text into a number with `int(...)` or `float(...)` first." if not words else
            f"{code(repr(words[0]))} is not a number, so converting it would fail too: check which value you "
            "meant to use here.")
    if left == right == "str" and op == "-":
        return Diagnosis(
            "type-mismatch", f"Text can't be subtracted{on(line)}",
            f"{ctx.where(True)} `-` is used between two texts. `+` joins texts, but there is no `-` for text: "
            "Python doesn't know what taking one text away from another would mean.",
            line, "To remove a part of a text, use `.replace(part, '')`; for arithmetic, turn both texts into numbers "
                  "with `int(...)` or `float(...)` first.")
    if left == "list" and right != "list" and op == "+":
        suggestion = "To add one item to a list, use `.append(item)`; `+` only joins two lists."
    elif {left, right} & {"function", "method", "builtin_function_or_method"}:
        suggestion = "A function must be called to give its value: add `()` (with its arguments) after its name."
    else:
        suggestion = "Check the types of both values (print `type(...)` of each) and convert one of them."
    return Diagnosis(
        "type-mismatch", title,
        f"{ctx.where(True)} `{op}` is used with {type_word(left)} and {type_word(right)}. Python doesn't know "
        f"how to combine those two kinds of value with `{op}`.",
        line, suggestion)


@rule(TypeError, kinds=("compare-types", "type-mismatch"), order=50)
def compare_types(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    m = re.match(r"'in <string>' requires string as left operand, not (\w+)", msg)
    if m:
        return Diagnosis(
            "type-mismatch", f"Looking for {plain(m.group(1))} inside text{on(line)}",
            f"{ctx.where(True)} `in` looks for {type_word(m.group(1))} inside a text. In a text, `in` can only "
            "look for another text, like `'a' in 'abc'`.",
            line, "Turn the value into text first with `str(...)`, or check that the right side is the list you meant.")
    m = re.match(r"'(\S+)' not supported between instances of '(\w+)' and '(\w+)'", msg)
    if not m:
        return None
    op, left, right = m.groups()
    if left == right:  # both of one kind: that kind has no order at all; converting one side would not help
        sorting = any(isinstance(c.func, ast.Name) and c.func.id in ("sorted", "max", "min")
                      or isinstance(c.func, ast.Attribute) and c.func.attr == "sort"
                      for c in ctx.nodes_on_line(ast.Call))
        return Diagnosis(
            "compare-types", f"Two {plain(left)} values can't be ordered{on(line)}",
            f"{ctx.where(True)} `{op}` compares two values that are both {type_word(left)}. That kind of value "
            "has no order of its own, so Python can't tell which one is smaller.",
            line, "Sort by something that has an order, like `key=lambda item: item['name']` or "
                  "`key=abs` (for complex numbers)." if sorting else
                  "Compare something inside the values that has an order, such as a number or a text "
                  "(`abs(z)` for a complex number, `a.age` for an object).")
    return Diagnosis(
        "compare-types", f"Comparing {plain(left)} with {plain(right)}{on(line)}",
        f"{ctx.where(True)} `{op}` compares {type_word(left)} with {type_word(right)}. Python can only order "
        "values of the same kind, such as two numbers or two texts."
        + (" Remember that `input()` always gives back text." if "input(" in ctx.source else ""),
        line, "Turn the text into a number with `int(...)` or `float(...)` before comparing."
        if {"str"} & {left, right} and {"int", "float"} & {left, right}
        else "Convert one side so that both values are the same type.")


_WANTS = re.compile(
    r"(?:bad operand type for (unary [-+~]|abs\(\)): '(\w+)'"
    r"|type (\w+) doesn't define __round__ method"
    r"|must be real number, not (\w+)"
    r"|(\w+)\(\) argument must be a string, a bytes-like object or a(?: real)? number, not '(\w+)'"
    r"|(\w+)\(\) argument (\d+) must be (\w+), not (\w+)"
    r"|(\w+) first arg must be (\w+) or a tuple of \w+, not (\w+)"
    r"|ord\(\) expected a character, but string of length (\d+) found)")


_PLUS_EQUALS = re.compile(r"(\w+)\s*=\+\s*")
_JOINED = r"\1 += "


@rule(TypeError, kinds="argument-type", order=60)
def argument_type(ctx: Context) -> Diagnosis | None:
    m = _WANTS.match(ctx.message)
    if not m:
        return None
    g, line = m.groups(), ctx.line
    if g[0]:
        wants, got = "a number", g[1]
        what = "`abs()`" if g[0] == "abs()" else f"`{g[0][-1]}` in front of a value"
    elif g[2]:
        what, wants, got = "`round()`", "a number", g[2]
    elif g[3]:
        call = ""
        for c in ctx.nodes_on_line(ast.Call):  # the call that was given a value of that type
            if any(type(v).__name__ == g[3] for ok, v in (evaluate(ctx, a) for a in c.args) if ok):
                call = snippet(c.func)
        what, wants, got = (f"`{call}()`" if call else "A function"), "a number", g[3]
    elif g[4]:
        what, wants, got = f"`{g[4]}()`", "a text or a number", g[5]
    elif g[6]:
        what, wants, got = f"`{g[6]}()` (argument {g[7]})", type_word(g[8]), g[9]
    elif g[10]:
        what, wants, got = f"`.{g[10]}()`", type_word(g[11]), g[12]
    else:
        return Diagnosis(
            "argument-type", f"ord() takes a single character{on(line)}",
            f"{ctx.where(True)} `ord()` is given a text of {g[13]} characters, but it gives the code of one "
            "character only. For example, `ord('a')` is 97.",
            line, "Loop over the text and call `ord(c)` for each character `c`.")
    fix = ("Turn the text into a number with `int(...)` or `float(...)` first." if got == "str" and "number" in wants
           else f"Pass {wants} instead; print `type(...)` of the value to see what it is.")
    # `total =+ "x"`: meant `+=` (which joins texts and lists), got `= +"x"`; `-=` would fail on them too
    swapped = re.search(r"(\w+)\s*=(\+)(?!=)\s*\S", ctx.text) if g[0] == "unary +" and got in ("str", "list") else None
    if swapped:
        name, sign = swapped.groups()
        return Diagnosis(
            "argument-type", f"{sign}= written as ={sign}{on(line)}",
            f"{ctx.where(True)} `={sign}` is read as `=` followed by a sign in front of the value, so Python tried "
            f"to put a `{sign}` in front of {type_word(got)}. To add to a variable, the operator is `{sign}=`.",
            line, f"Write {propose(_PLUS_EQUALS.sub(_JOINED, ctx.text.strip(), count=1))}, with `+` before `=`.")
    return Diagnosis(
        "argument-type", f"{plain(what.replace('`', ''))} can't use {plain(type_word(got).replace('`', ''))}"
                         f"{on(line)}",
        f"{ctx.where(True)} {what} needs {wants}, but it was given {type_word(got)}. Python doesn't convert "
        f"values to another type by itself.{_input_note(ctx)}",
        line, fix)


@rule(TypeError, kinds="format-string", order=60)
def percent_format(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    if msg.startswith("not all arguments converted during string formatting"):
        return Diagnosis(
            "format-string", f"% on text means formatting{on(line)}",
            f"{ctx.where(True)} `%` has text on its left. For numbers `%` is the remainder, but for text it "
            "fills in placeholders like `%s`, and this text has fewer placeholders than values."
            + _input_note(ctx),
            line, "For a remainder, turn the text into a number first, like `int(text) % 2`; for formatting, "
                  "an f-string is easier: `f\"{name} is {age}\"`.")
    if msg.startswith("not enough arguments for format string") or re.match(r"%\w format: ", msg):
        return Diagnosis(
            "format-string", f"The % placeholders don't match the values{on(line)}",
            f"{ctx.where(True)} a text with `%` placeholders is filled with values, but the values don't fit the "
            f"placeholders ({msg}). Each `%s` or `%d` takes one value, in order.",
            line, "Give one value per placeholder, in a tuple: `'%s is %d' % (name, age)`; or use an f-string.")
    return None


@rule(TypeError, kinds="join-non-strings", order=60)
def join_numbers(ctx: Context) -> Diagnosis | None:
    m = ctx.match(r"sequence item (\d+): expected str instance, (\w+) found")
    if not m:
        return None
    line = ctx.line
    suggestion = "Turn every item into text first: `', '.join(str(x) for x in values)`."
    for call in ctx.nodes_on_line(ast.Call):
        if isinstance(call.func, ast.Attribute) and call.func.attr == "join" and len(call.args) == 1:
            sep, items = snippet(call.func.value), snippet(call.args[0])
            suggestion = f"Turn every item into text first: {propose(f'{sep}.join(str(x) for x in {items})')}."
            break
    return Diagnosis(
        "join-non-strings",
        f"join() needs text, and item {m.group(1)} is {plain(type_word(m.group(2)).replace('`', ''))}{on(line)}",
        f"{ctx.where(True)} `.join(...)` glues texts together, but item {m.group(1)} of what it is given is "
        f"{type_word(m.group(2))}. `join` doesn't turn numbers into text by itself.",
        line, suggestion)


@rule(TypeError, kinds=("not-iterable", "unpack-non-iterable"), order=60)
def not_iterable(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    m = ctx.match(r"cannot unpack non-iterable (\w+) object")
    loops = [n for n in ctx.nodes_on_line(ast.For) if n.lineno == line and isinstance(n.target, ast.Tuple)]
    if m and loops:
        loop, type_name = loops[0], m.group(1)
        names = ", ".join(snippet(e) for e in loop.target.elts)
        return Diagnosis(
            "unpack-non-iterable", f"Each item is one value, not {len(loop.target.elts)}{on(line)}",
            f"{ctx.where(True)} the loop gives each item of {code(snippet(loop.iter))} to the names `{names}`, but "
            f"each item is {type_word(type_name)}, a single value that can't be split into "
            f"{len(loop.target.elts)} names. `enumerate(...)` gives pairs of a position and an item.",
            line, f"To get each position with its item, loop over "
                  f"{propose('for ' + names + ' in enumerate(' + snippet(loop.iter) + '):')}; otherwise use one "
                  "name.")
    if m:
        type_name = m.group(1)
        return Diagnosis(
            "unpack-non-iterable", f"{capital(plain(type_word(type_name).replace('`', '')))} can't be split into names"
                                   f"{on(line)}",
            f"{ctx.where(True)} several names on the left of `=` (like `a, b = ...`) are given one value, "
            f"{type_word(type_name)}. Python can only split a list, a tuple or another collection into names, one "
            "item per name.",
            line, "Give one value per name, like `a, b = 4, 2`, or use one name for the single value.")
    m = ctx.match(r"'(\w+)' object is not iterable") or ctx.match(r"object of type '(\w+)' has no len\(\)") \
        or ctx.match(r"argument of type '(\w+)' is not iterable") or ctx.match(r"'(\w+)' object is not an iterator")
    if not m:
        return None
    type_name = m.group(1)
    title = f"{capital(type_word(type_name).replace('`', ''))} has no items{on(line)}"
    if type_name in ("builtin_function_or_method", "method", "function"):
        return Diagnosis(
            "not-iterable", f"A function is used without calling it{on(line)}",
            f"{ctx.where(True)} a function or method is used where its result was meant: without `()` after it, "
            "it is the function itself, not what it gives back. Python can't go through the items of a function.",
            line, "Add `()` after the name, like `d.keys()` or `text.split()`.")
    if "not an iterator" in msg:
        return Diagnosis(
            "not-iterable", f"next() needs an iterator{on(line)}",
            f"{ctx.where(True)} `next(...)` is given {type_word(type_name)}. `next` works on an iterator, which "
            "remembers how far it got; a list does not.",
            line, "Make an iterator first, like `items = iter(values)`, then call `next(items)`; or use a `for` loop.")
    if "len()" in msg and type_name in ("generator", "map", "filter", "zip", "enumerate", "reversed"):
        # these do have items, given one at a time: they just don't know how many in advance
        return Diagnosis(
            "not-iterable", f"A {plain(type_name)} has no length{on(line)}",
            f"{ctx.where(True)} `len(...)` is used on a {type_name} object. It gives its items one at a time and "
            "doesn't know in advance how many there are, so it has no length.",
            line, "Make a list of the items first, like `len(list(...))`, or build a list with `[...]` instead.")
    if "len()" in msg and "len(" not in ctx.text:
        explanation = (f"{ctx.where(True)} a function is given {type_word(type_name)} where it needs a collection "
                       "(it asked for its length). Only collections such as lists, strings and dictionaries have "
                       "a length.")
    elif "len()" in msg:
        explanation = (f"{ctx.where(True)} `len(...)` is used on {type_word(type_name)}. Only collections such "
                       "as lists, strings and dictionaries have a length.")
    elif "argument of type" in msg:
        explanation = (f"{ctx.where(True)} `in` looks inside {type_word(type_name)}. Only collections such as "
                       "lists, strings and dictionaries have items to look through.")
    else:
        explanation = (f"{ctx.where(True)} a loop (or a function like `list()` or `sum()`) tries to go through "
                       f"the items of {type_word(type_name)}. Only collections such as lists, strings and ranges "
                       "have items to go through.")
    suggestion = "Check that the value is the list or text you expected."
    loops = [n for n in ctx.nodes_on_line(ast.For) if n.lineno == line]
    if loops and type_name in ("int", "float") and "is not iterable" in msg and "argument of type" not in msg:
        loop = loops[0]
        it = loop.iter
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "len":
            suggestion = (f"To go through the positions, loop over a range: "
                          f"{propose('for ' + snippet(loop.target) + ' in range(' + snippet(it) + '):')}.")
        else:
            suggestion = "To repeat something n times, loop over `range(n)`, like `for i in range(n):`."
    return Diagnosis("not-iterable", title, explanation, line, suggestion)


@rule(TypeError, kinds="not-an-integer", order=60)
def not_an_integer(ctx: Context) -> Diagnosis | None:
    m = ctx.match(r"'(\w+)' object cannot be interpreted as an integer")
    if not m:
        return None
    type_name, line = m.group(1), ctx.line
    in_range = any(isinstance(c.func, ast.Name) and c.func.id == "range" for c in ctx.nodes_on_line(ast.Call))
    where = "`range(...)`" if in_range else "this function"
    if type_name == "str":
        fix = "Turn the text into a number with `int(...)`, like `range(int(n))`." + _input_note(ctx)
    elif type_name == "float":
        fix = ("Use a whole number: `int(...)` cuts off the decimals, and `//` divides giving a whole number "
               "(`n // 2` instead of `n / 2`).")
    elif type_name in ("list", "tuple", "dict", "set"):
        fix = ("To loop over the items, write `for item in values:` without `range`; for their positions, "
               "`range(len(values))`.")
    else:
        fix = "Pass a whole number (an `int`)."
    return Diagnosis(
        "not-an-integer", f"{'range()' if in_range else 'A whole number'} needs a whole number, not "
                          f"{plain(type_word(type_name).replace('`', ''))}{on(line)}",
        f"{ctx.where(True)} {where} needs a whole number, but it was given {type_word(type_name)}. "
        "Counting and positions only work with whole numbers.",
        line, fix)
