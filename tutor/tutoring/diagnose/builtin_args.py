"""A built-in function or statement given the wrong kind of value: the message names the function and
what it wanted (``vars()``, ``dict()`` of a flat list, ``getattr`` with a number, float slice indices,
``int()``'s base, a date's month, ``pow()``'s modulus, ``strptime``'s format, ``raise "text"``).

Each rule reads only the message (and, for a word of detail, the failing line); the wording says what the
function needs, never guesses what the student meant beyond that.
"""

from __future__ import annotations

import re

from .context import Context
from .model import Diagnosis
from .registry import rule
from .text import on


@rule(TypeError, kinds="vars-without-dict", order=60)
def vars_without_dict(ctx: Context) -> Diagnosis | None:
    if not ctx.match(r"vars\(\) argument must have __dict__ attribute"):
        return None
    return Diagnosis(
        "vars-without-dict", f"vars() can't list this value's attributes{on(ctx.line)}",
        f"`vars(x)` shows the attributes that an object stores for itself, in its `__dict__`. {ctx.where(True)} "
        "it is given a value without one: lists, numbers, strings, and objects of a class with `__slots__`, "
        "keep no `__dict__`.", ctx.line,
        "To see what a value offers, use `dir(x)`; to look at a list or a string, just `print(x)` it.")


@rule(TypeError, ValueError, kinds="dict-from-sequence", order=60)
def dict_from_sequence(ctx: Context) -> Diagnosis | None:
    m = ctx.match(r"cannot convert dictionary update sequence element #(\d+) to a sequence")
    n = ctx.match(r"dictionary update sequence element #(\d+) has length (\d+); 2 is required")
    if not (m or n):
        return None
    which = int((m or n).group(1))
    detail = (f"Item number {which} (counting from 0) is a single value, not a pair." if m else
              f"Item number {which} (counting from 0) has {n.group(2)} parts instead of 2 (a string counts as "
              "a sequence of its letters).")
    return Diagnosis(
        "dict-from-sequence", f"A dictionary needs pairs of key and value{on(ctx.line)}",
        f"{ctx.where(True)} `dict(...)` (or `.update(...)`) is given a list, and each item of that list must be "
        f"a pair: a key and its value, like `[(\"a\", 1), (\"b\", 2)]`. {detail}", ctx.line,
        "Give pairs, for example `dict(zip(keys, values))` to join a list of keys with a list of values, or "
        "`dict.fromkeys(keys, 0)` to give every key the same value.")


@rule(TypeError, kinds="attribute-name-type", order=60)
def attribute_name_type(ctx: Context) -> Diagnosis | None:
    m = ctx.match(r"(?:\w+\(\): )?attribute name must be string(?:, not '(\w+)')?")  # 3.10: no type
    if not m:
        return None
    return Diagnosis(
        "attribute-name-type", f"An attribute's name must be text{on(ctx.line)}",
        f"`getattr`, `hasattr`, `setattr` and `delattr` take the object first and then the name of the "
        f"attribute as a string, like `getattr(obj, \"size\")`. {ctx.where(True)} the name is "
        "something else, not text.", ctx.line,
        "Check the order of the two values and put the attribute's name in quotes.")


@rule(TypeError, kinds="slice-index-type", order=60)
def slice_index_type(ctx: Context) -> Diagnosis | None:
    if not ctx.match(r"slice indices must be integers or None or have an __index__ method"):
        return None
    return Diagnosis(
        "slice-index-type", f"Slice positions must be whole numbers{on(ctx.line)}",
        f"{ctx.where(True)} a slice `[start:stop]` is given a position that is not a whole number (often a "
        "result of `/`, which always gives a decimal like `2.0`). Positions in a list or a string are counted "
        "in whole steps.", ctx.line,
        "Use `//` instead of `/` to divide into a whole number, or convert with `int(...)`.")


@rule(TypeError, kinds="raise-non-exception", order=60)
def raise_non_exception(ctx: Context) -> Diagnosis | None:
    if ctx.match(r"exceptions must derive from BaseException"):
        return Diagnosis(
            "raise-non-exception", f"raise needs an error, not a plain value{on(ctx.line)}",
            f"{ctx.where(True)} `raise` is given something that is not an error (an exception), for example a "
            "string. `raise` only accepts an exception class or object, which can carry the text.", ctx.line,
            "Wrap the message in an exception: `raise ValueError(\"what went wrong\")`.")
    if ctx.match(r"catching classes that do not inherit from BaseException is not allowed"):
        return Diagnosis(
            "raise-non-exception", f"except names a class that is not an error{on(ctx.line)}",
            f"After `except` come exception classes (like `ValueError`). {ctx.where(True)} one of the classes "
            "named after `except` is not an exception: a class of your own must inherit from `Exception` to "
            "be caught.", ctx.line,
            "Define your class as `class MyError(Exception):`, or name a built-in exception instead.")
    return None


@rule(ValueError, kinds="out-of-range-argument", order=60)
def out_of_range_argument(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    m = re.match(r"(month|day|hour|minute|second|microsecond|year) (?:must be in|is out of range)"
                 r"(?: ([\d.]+))?", msg)
    if m and re.search(r"\b(date|datetime|time)\s*\(", ctx.text):
        part = m.group(1)
        limits = {"month": "1 to 12", "hour": "0 to 23", "minute": "0 to 59", "second": "0 to 59",
                  "day": "1 to the number of days in that month"}.get(part, "its allowed range")
        order = (" The values of a date are given in the order year, month, day." if part in ("year", "month", "day")
                 else " The values of a time are given in the order hour, minute, second.")
        return Diagnosis(
            "out-of-range-argument", f"This date or time has an impossible {part}{on(line)}",
            f"{ctx.where(True)} a date or time is made with a {part} that can't exist: the {part} goes from "
            f"{limits}.{order}", line,
            f"Check the {part}, and the order of the values.")
    if re.match(r"int\(\) base must be >= 2 and <= 36, or 0", msg):
        return Diagnosis(
            "out-of-range-argument", f"int() can't use this base{on(line)}",
            f"{ctx.where(True)} `int(text, base)` is given a base outside 2 to 36 (a base above 36 would need "
            "more digits than the 10 digits and 26 letters). A base of 0 means \"read it from the prefix\", like "
            "`0x` for 16.", line, "Use a base from 2 to 36, such as 2, 8, 10 or 16.")
    if re.match(r"pow\(\) 3rd argument cannot be 0", msg):
        return Diagnosis(
            "out-of-range-argument", f"pow() with a remainder by 0{on(line)}",
            f"`pow(x, y, m)` gives the remainder of `x ** y` divided by `m`. {ctx.where(True)} `m` is 0, and "
            "nothing can be divided by 0.", line,
            "Check the third value; to compute just `x ** y`, call `pow(x, y)` with two values.")
    m = re.match(r"time data (.+) does not match format (.+)$", msg)
    if m:
        return Diagnosis(
            "out-of-range-argument", f"The text doesn't match the date format{on(line)}",
            f"{ctx.where(True)} `strptime` reads the text {m.group(1)} with the format {m.group(2)}. The format must "
            "follow the text exactly, separators included: `%Y-%m-%d` reads `2024-05-17`, `%d/%m/%Y` reads "
            "`17/05/2024`.", line,
            "Change the format so that each `%` code and each separator lines up with the text.")
    return None
