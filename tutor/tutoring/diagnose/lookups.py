"""Indexing and keys: positions outside a list, missing keys, indexing what can't be indexed, lists as
dictionary keys, and changing text or tuples in place."""

from __future__ import annotations

import ast
import collections
import itertools
import re
import types
from collections.abc import Mapping

from .context import MAX_NAMES, Context
from .model import Diagnosis
from .registry import rule
from .safe_eval import evaluate
from .text import capital, close, code, on, plain, propose, snippet, type_word

_SEQUENCES = (list, tuple, str, bytes, bytearray, range)


def _stored_subscripts(ctx: Context) -> list[ast.Subscript]:
    return [s for s in ctx.nodes_on_line(ast.Subscript) if isinstance(s.ctx, ast.Store)]


@rule(IndexError, kinds=("index-out-of-range", "empty-sequence", "format-string"))
def index_error(ctx: Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    if msg in ("pop from empty list", "Cannot choose from an empty sequence", "pop from an empty deque") \
            or (msg == "list index out of range" and not ctx.raised_in_user_code()
                and any(isinstance(c.func, ast.Attribute) and c.func.attr == "choice"
                        for c in ctx.nodes_on_line(ast.Call))):
        what = "`.pop()`" if "pop" in msg else "`random.choice(...)`"
        return Diagnosis(
            "empty-sequence", f"The list is empty{on(line)}",
            f"{ctx.where(True)} {what} needs at least one item, but the list it is given is empty. An empty list "
            "often means that a loop or a filter before this line found nothing.",
            line, "Check that the list has items first, for example with `if values:`.")
    m = re.match(r"Replacement index (\d+) out of range for positional args tuple", msg)
    if m:
        return Diagnosis(
            "format-string", f"More {{}} than values in format(){on(line)}",
            f"{ctx.where(True)} a text has more `{{}}` placeholders than the values given to `.format(...)`; "
            f"placeholder number {m.group(1)} (counting from 0) has no value. Each `{{}}` takes the next value, in "
            "order.",
            line, "Give `.format(...)` one value per `{}`, or use an f-string: `f\"{a} and {b}\"`.")
    if msg == "list assignment index out of range":
        return _assign_past_end(ctx)
    m = re.match(r"(\w+) (?:object )?index out of range", msg) or re.match(r"(pop) index out of range", msg)
    if not m:
        return None
    kind_of = m.group(1)
    thing = {"list": "list", "string": "text", "tuple": "tuple", "range": "range", "pop": "list"}.get(kind_of, kind_of)
    items = "character" if thing == "text" else "item"
    detail, suggestion, seen = "", None, False
    if kind_of == "pop":
        for call in ctx.nodes_on_line(ast.Call):
            if isinstance(call.func, ast.Attribute) and call.func.attr == "pop" and call.args:
                found, value = evaluate(ctx, call.func.value)
                ok_index, index = evaluate(ctx, call.args[0])
                if found and type(value) is list and ok_index and type(index) is int:
                    name, size = snippet(call.func.value), len(value)
                    detail = (f" `{name}` has {size} item{'s' if size != 1 else ''} and `.pop({index})` asks for "
                              f"position {index}.")
                    suggestion = (f"Use a position from 0 to {size - 1}, or `.pop()` for the last item." if size else
                                  f"Check that `{name}` has items first, e.g. with `if {name}:`.")
                    seen = True
                    break
    for sub in ctx.nodes_on_line(ast.Subscript) if not seen else []:
        name = snippet(sub.value)
        found, value = evaluate(ctx, sub.value)
        if not found or type(value) not in _SEQUENCES:  # len() of a subclass could run the student's code
            continue
        try:
            size = len(value)
        except Exception:
            continue
        ok_index, index = evaluate(ctx, sub.slice)
        if ok_index and isinstance(index, int) and -size <= index < size:
            continue  # not the subscript that failed
        seen = True
        asked = f" and position {index} was asked for" if ok_index and isinstance(index, int) else ""
        if size == 0:
            detail = f" `{name}` is empty{asked}, so it has no positions at all."
            suggestion = f"Check that `{name}` has items before using one, e.g. with `if {name}:`."
        else:
            valid = f"the valid positions are 0 to {size - 1}" if size > 1 else "the only valid position is 0"
            detail = f" `{name}` has {size} {items}{'s' if size != 1 else ''}{asked}; {valid}."
            suggestion = (f"Use a position from 0 to {size - 1}; the last {items} is `{name}[{size - 1}]` or "
                          f"`{name}[-1]`." if size > 1 else f"Use position 0: `{name}[0]`.")
        break
    if not seen and not ctx.raised_in_user_code() and not ctx.nodes_on_line(ast.Subscript) and kind_of != "pop":
        return None  # raised inside a library, from a position we can't see: say nothing wrong
    return Diagnosis(
        "index-out-of-range", f"Position outside the {thing}{on(line)}",
        f"{ctx.where(True)} an item of a {thing} is asked for at a position it doesn't have.{detail} "
        "Positions count from 0, so the last one is the length minus 1.",
        line, suggestion or "Print the length with `len(...)` and the position you use, just before this line; "
                            "a loop with `range(len(...) + 1)` or a position counted from 1 are common causes.")


def _assign_past_end(ctx: Context) -> Diagnosis:
    line = ctx.line
    name, size = None, None
    for sub in _stored_subscripts(ctx):
        found, value = evaluate(ctx, sub.value)
        if found and type(value) is list:
            name, size = snippet(sub.value), len(value)
            break
    has = f" `{name}` has {size} item{'s' if size != 1 else ''}." if name is not None else ""
    target = name or "values"
    return Diagnosis(
        "index-out-of-range", f"Assigning past the end of a list{on(line)}",
        f"{ctx.where(True)} a value is stored at a position the list doesn't have yet.{has} Storing with "
        "`[...] =` can only replace an item that exists; it doesn't make the list longer.",
        line, f"To add an item at the end, use {propose(target + '.append(value)')}; or start with a list of the "
              f"right length, like `{target} = [0] * 10`.")


_STDLIB_MAPPINGS = (dict, collections.OrderedDict, collections.defaultdict, collections.Counter,
                    collections.ChainMap, types.MappingProxyType)


def _keys(value: object) -> list | None:
    """The keys of a standard-library mapping (reading them runs no code of the student's)."""
    if type(value) not in _STDLIB_MAPPINGS:
        return None
    try:
        keys = list(itertools.islice(value.keys(), MAX_NAMES))  # type: ignore[attr-defined]
    except Exception:
        return None
    # comparing with a key of the student's own class could run its __eq__: only plain keys
    return keys if all(type(k) in (str, int, float, bool, tuple, type(None)) for k in keys) else None


@rule(KeyError, kinds=("missing-key", "missing-value", "empty-sequence"))
def key_error(ctx: Context) -> Diagnosis | None:
    err = ctx.error
    if not err.args:
        return None
    key, line = err.args[0], ctx.line
    if key in ("pop from an empty set", "popitem(): dictionary is empty", "dictionary is empty"):
        return Diagnosis(
            "empty-sequence", f"Nothing left to take out{on(line)}",
            f"{ctx.where(True)} an item is taken out of a {'set' if 'set' in key else 'dictionary'} that is "
            "empty. Taking an item out needs at least one to be there.",
            line, "Check that it has items first, for example with `if values:`.")
    if key == "No keys found in the first mapping.":  # ChainMap.popitem(): a message, not the missing key
        return Diagnosis(
            "empty-sequence", f"Nothing left to take out{on(line)}",
            f"{ctx.where(True)} `popitem()` is called on a `ChainMap` whose first mapping is empty. A ChainMap "
            "only takes items out of its first mapping, even when later mappings hold some.",
            line, "Check that the first mapping has items first, for example with `if chain.maps[0]:`.")
    chain = False
    if isinstance(key, str):
        m = re.match(r"Key not found in the first mapping: (.+)$", key, re.S)  # collections.ChainMap
        if m:
            chain = True
            try:
                key = ast.literal_eval(m.group(1))
            except Exception:
                return None  # a key whose repr we can't read back: say nothing wrong about it
    for call in ctx.nodes_on_line(ast.Call):
        if isinstance(call.func, ast.Attribute) and call.func.attr == "remove":
            found, value = evaluate(ctx, call.func.value)
            if found and isinstance(value, (set, frozenset)):
                name = snippet(call.func.value)
                return Diagnosis(
                    "missing-value", f"{plain(repr(key))} is not in the set{on(line)}",
                    f"{ctx.where(True)} `.remove(...)` is asked to take {code(repr(key))} out of `{name}`, but the "
                    "set doesn't hold it. `.remove` needs the value to be there, exactly (same type, same case).",
                    line, f"Use {propose(name + '.discard(' + repr(key) + ')')}, which does nothing when the "
                          "value is missing, or check with `in` first.")
    name, keys, counting, mapping = None, None, False, None
    targets: list[tuple[ast.AST, ast.AST | None]] = [(s.value, s.slice) for s in ctx.nodes_on_line(ast.Subscript)]
    targets += [(c.func.value, c.args[0] if c.args else None) for c in ctx.nodes_on_line(ast.Call)
                if isinstance(c.func, ast.Attribute) and c.func.attr == "pop"]
    for holder, used_node in targets:
        found, value = evaluate(ctx, holder)
        if found and isinstance(value, Mapping):
            ok_key, used = evaluate(ctx, used_node) if used_node is not None else (False, None)
            if ok_key and used != key:
                continue
            name, mapping = snippet(holder), value
            counting = any(isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Subscript)
                           and snippet(n.target.value) == name for n in ctx.nodes_on_line(ast.AugAssign)) or any(
                isinstance(n, ast.Assign) and any(isinstance(t, ast.Subscript) and snippet(t.value) == name
                                                  for t in n.targets)
                and any(isinstance(v, ast.Subscript) and snippet(v.value) == name for v in ast.walk(n.value))
                for n in ctx.nodes_on_line(ast.Assign))  # counts[w] = counts[w] + 1
            keys = _keys(value)
            break
    in_dict = f" in `{name}`" if name else ""
    the_dict = f"the dictionary `{name}`" if name else "the dictionary"
    d = name or "the_dict"
    if chain:
        elsewhere = isinstance(mapping, collections.ChainMap) and any(
            _contains(m, key) for m in mapping.maps[1:])
        return Diagnosis(
            "missing-key", f"The key {plain(repr(key))} is not in the first mapping of {plain(name or 'the ChainMap')}"
                           f"{on(line)}",
            f"{ctx.where(True)} `pop` (or `del`) on a `ChainMap` is asked to remove {code(repr(key))}. A ChainMap "
            "only removes keys from its first mapping, and that one doesn't have this key"
            + (", although a later mapping does." if elsewhere else "."),
            line, f"Check the key first with {code(repr(key) + ' in ' + d + '.maps[0]')}; to remove it from the "
                  "mapping that holds it, change that mapping itself.")
    guess = None
    if keys and isinstance(key, str):
        guess = close(key, [k for k in keys if isinstance(k, str)], cutoff=0.6)
        if guess is None and key.strip().lstrip("-").isdigit() and int(key) in keys:
            guess = int(key)
    elif keys and isinstance(key, (int, float)) and str(key) in keys:
        guess = str(key)
    if counting:
        counted = f"{d}[{key!r}] = {d}.get({key!r}, 0) + 1"
        suggestion = f"When counting, start each key at 0: {propose(counted)}, or use `collections.Counter`."
    elif guess is not None:
        suggestion = f"Did you mean {code(repr(guess))}?"
    elif keys is not None and len(keys) <= 8:
        shown = ", ".join(code(repr(k), 30) for k in keys) or "none"
        suggestion = f"The keys{in_dict} are: {shown}."
    else:
        suggestion = (f"Check with {code(repr(key) + ' in ' + d)} first, or use "
                      f"{code(d + '.get(' + repr(key) + ')')}, which gives `None` instead of an error.")
    return Diagnosis(
        "missing-key", f"The key {plain(repr(key))} is not{plain(in_dict.replace('`', '')) or ' there'}{on(line)}",
        f"{ctx.where(True)} {the_dict} is asked for the key {code(repr(key))}, but it has no such "
        "key. Keys must match exactly, including upper and lower case and the type (`1` and `'1'` differ).",
        line, suggestion)


def _contains(mapping: object, key: object) -> bool:
    try:
        return type(mapping) in _STDLIB_MAPPINGS and key in mapping  # type: ignore[operator]
    except Exception:
        return False


@rule(TypeError, kinds="not-subscriptable", order=60)
def not_subscriptable(ctx: Context) -> Diagnosis | None:
    m = ctx.match(r"'(\w+)' object is not subscriptable")
    if not m:
        return None
    type_name, line = m.group(1), ctx.line
    subs = ctx.nodes_on_line(ast.Subscript)
    culprit, value = None, None
    for sub in subs:
        found, held = evaluate(ctx, sub.value)
        if found and type(held).__name__ == type_name:
            culprit, value = sub, held
            break
    functions = ("function", "builtin_function_or_method", "method", "method-wrapper")
    if culprit is None:  # a value we can't read safely (a method, a call's result): go by the code's shape
        shaped = [s for s in subs if isinstance(s.value, ast.Attribute)] if type_name in functions else \
            [s for s in subs if isinstance(s.value, ast.Call)]
        culprit = shaped[0] if len(shaped) == 1 else None
    name = snippet(culprit.value) if culprit is not None else None
    index = snippet(culprit.slice) if culprit is not None else None
    subject = code(name) if name else "a value"
    if type_name in functions and culprit is not None:
        takes_nothing = False
        try:
            import inspect

            takes_nothing = isinstance(value, types.FunctionType) and not inspect.signature(value).parameters
        except (TypeError, ValueError):
            pass
        if isinstance(culprit.value, ast.Attribute) or takes_nothing:
            fix = f"Call it first, then pick the item from its result: {propose(name + '()[' + index + ']')}."
        else:
            fix = f"To call it, use round brackets: {propose(name + '(' + index + ')')}."
        return Diagnosis(
            "not-subscriptable", f"'{plain(name)}' is a function: call it with ( ){on(line)}",
            f"{ctx.where(True)} {subject} is followed by square brackets `[...]`, which pick an item from a list, "
            f"text or dictionary. But {subject} is {type_word(type_name)}; functions are called with round "
            "brackets `(...)`.",
            line, fix)
    target = name or "values"
    if type_name in ("dict_keys", "dict_values", "dict_items", "set", "frozenset", "map", "filter", "zip",
                     "generator"):
        fix = f"Turn it into a list first, like {code('list(' + target + ')[0]')}."
        explanation = (f"{ctx.where(True)} {subject} is {type_word(type_name)}, which has items but no positions, "
                       "so `[...]` can't pick one by number. Only lists, texts and tuples have positions.")
    elif type_name in ("int", "float", "bool"):
        fix = (f"To get a digit, turn the number into text first: {code('str(' + (name or 'n') + ')[0]')}; if you "
               f"meant a list, check where {subject} got its value.")
        explanation = (f"{ctx.where(True)} {subject} is {type_word(type_name)}, and a number has no items to "
                       "pick with `[...]`. Only lists, texts, tuples and dictionaries do.")
    elif type_name == "type":
        fix = f"To make a value, call the class with round brackets, like `{name or 'MyClass'}(...)`."
        explanation = (f"{ctx.where(True)} {subject} is a class, and `[...]` on a class doesn't pick an item.")
    else:
        fix = f"Check what {subject} holds: print `type(...)` of it before this line."
        explanation = (f"{ctx.where(True)} {subject} is {type_word(type_name)}, which has no items to pick "
                       "with `[...]`. Only lists, texts, tuples and dictionaries do.")
    return Diagnosis("not-subscriptable", f"{capital(plain(type_word(type_name).replace('`', '')))} can't be "
                                          f"indexed with [...]{on(line)}", explanation, line, fix)


def _holds_rows(ctx: Context) -> bool:
    """Whether a list or tuple indexed with ``[a, b]`` on the line holds rows (lists or tuples) itself."""
    for sub in ctx.nodes_on_line(ast.Subscript):
        found, value = evaluate(ctx, sub.value)
        if found and isinstance(value, (list, tuple)) and value:
            return all(isinstance(item, (list, tuple)) for item in value[:MAX_NAMES])
    return True  # unknown: a grid is the usual reason to write two positions


@rule(TypeError, kinds="index-type", order=60)
def index_type(ctx: Context) -> Diagnosis | None:
    m = ctx.match(r"(list|tuple|string|str) indices must be integers(?: or slices)?(?:, not '?(\w+)'?)?")
    if not m:
        return None
    container, got, line = m.group(1), m.group(2), ctx.line
    thing = "text" if container in ("string", "str") else f"a {container}"
    if got is None:  # Python 3.10 says only "string indices must be integers"
        for sub in ctx.nodes_on_line(ast.Subscript):
            found, value = evaluate(ctx, sub.slice)
            if found and not isinstance(value, (int, slice)):
                got = type(value).__name__
                break
    got_word = type_word(got) if got else "something else"
    if got == "float":
        fix = "Use a whole number: `int(...)`, or divide with `//` (`n // 2` instead of `n / 2`)."
    elif got == "str" and container in ("list", "tuple"):
        fix = ("If the text holds a number, convert it: `values[int(i)]`. To find where an item is, use "
               "`values.index(item)`; to look things up by name, use a dictionary.")
    elif got == "str":
        fix = "To find where a part of the text is, use `text.find(part)`; to look things up by name, use a dictionary."
    elif got == "tuple" and _holds_rows(ctx):
        fix = "Write one position per pair of brackets: `grid[1][2]`, not `grid[1, 2]`."
    elif got == "tuple":  # a flat list: `values[1, 2]` is no grid; one position, or a slice for several
        fix = "Use one position, like `values[1]`, or a slice for several items, like `values[1:3]`."
    else:
        fix = "Use a whole number as the position."
    return Diagnosis(
        "index-type", f"Positions in {plain(thing)} are whole numbers{on(line)}",
        f"{ctx.where(True)} {thing} is indexed with {got_word}. The position inside `[...]` of {thing} must be a "
        "whole number (or a slice like `1:3`).",
        line, fix)


@rule(TypeError, kinds="immutable-item-assignment", order=60)
def immutable_item_assignment(ctx: Context) -> Diagnosis | None:
    m = ctx.match(r"'(str|tuple|bytes|range|frozenset)' object (?:does not|doesn't) support item (assignment|deletion)")
    if not m:
        return None
    type_name, action, line = m.group(1), m.group(2), ctx.line
    subs = _stored_subscripts(ctx) if action == "assignment" else [
        s for s in ctx.nodes_on_line(ast.Subscript) if isinstance(s.ctx, ast.Del)]
    name = snippet(subs[0].value) if subs else None
    if type_name == "str":
        index = snippet(subs[0].slice) if subs else None
        fix = "Build a new text instead, for example with slices: `text = text[:i] + 'x' + text[i + 1:]`, or with " \
              "`text.replace(old, new)`."
        if name and index and isinstance(subs[0].value, ast.Name):
            literal = index.isdigit()
            before = "" if index == "0" else f"{name}[:{index}] + "
            after = f"{name}[{int(index) + 1}:]" if literal else f"{name}[{index} + 1:]"
            new = next((snippet(n.value) for n in ctx.nodes_on_line(ast.Assign) if subs[0] in n.targets), "'x'")
            rebuilt = f"{name} = {before}{'' if action == 'deletion' else new + ' + '}{after}"
            fix = f"Build a new text instead: {propose(rebuilt)}" + (" (or use `.replace(old, new)`)." if action ==
                                                                       "assignment" else ".")
        explanation = (f"{ctx.where(True)} a character of the text {code(name) if name else ''} is "
                       f"{'changed' if action == 'assignment' else 'removed'} in place. "
                       "Texts in Python can't be changed once made; every change makes a new text.")
    else:
        fix = f"Use a list instead (square brackets `[...]`), which can be changed; `list(...)` turns a {type_name} " \
              "into one."
        explanation = (f"{ctx.where(True)} an item of {type_word(type_name)} {code(name) if name else ''} is "
                       f"{'changed' if action == 'assignment' else 'deleted'}. A {type_name} can't be changed once "
                       "made.")
    return Diagnosis("immutable-item-assignment",
                     f"{capital(plain(type_word(type_name).replace('`', '')))} can't be changed in place{on(line)}",
                     " ".join(explanation.split()), line, fix)


@rule(TypeError, kinds="unhashable", order=60)
def unhashable(ctx: Context) -> Diagnosis | None:
    m = ctx.match(r"unhashable type: '(\w+)'") or ctx.match(r"cannot use '(\w+)' as a (?:dict key|set element)")
    if not m:
        return None
    type_name, line = m.group(1), ctx.line
    in_set = bool(ctx.nodes_on_line(ast.Set)) or "set(" in ctx.text or ".add(" in ctx.text
    where = "an item of a set" if in_set else "a dictionary key"
    fix = ("Use a tuple instead of a list, like `(1, 2)` rather than `[1, 2]`: a tuple can't change, so it can be "
           + ("a set item." if in_set else "a key.")) if type_name == "list" else (
        "Use something that can't change as the key, like a text, a number or a tuple.")
    if type_name == "set":
        fix = "Use `frozenset(...)`, a set that can't change, instead."
    return Diagnosis(
        "unhashable", f"{capital(plain(type_word(type_name).replace('`', '')))} can't be {where}{on(line)}",
        f"{ctx.where(True)} {type_word(type_name)} is used as {where}. Keys and set items must be values that "
        f"can't change (texts, numbers, tuples), because Python finds them by a fingerprint of their value, and "
        f"{type_word(type_name)} can change.",
        line, fix)
