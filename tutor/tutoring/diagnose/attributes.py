"""Attributes: a misspelt method, a method of another type (``.lower()`` on a list), ``None`` from a
method that works in place, and attributes a class never set."""

from __future__ import annotations

import ast
import builtins
import re
import sys

from .context import MAX_NAMES, Context
from .model import Diagnosis
from .none_values import KINDS as NONE_KINDS
from .none_values import none_rule
from .registry import rule
from .text import close, code, on, plain, propose, python_hint, snippet, type_word

# Names other languages use for things Python spells differently. A method name is suggested only
# when the value really has it; the others ("len()", "in", ...) are ways of writing it in Python.
_OTHER_LANGUAGES = {
    "push": "append", "add": "append", "push_back": "append", "length": "len()", "size": "len()",
    "len": "len()", "lenght": "len()", "isEmpty": "len()", "toUpperCase": "upper", "toLowerCase": "lower",
    "uppercase": "upper", "lowercase": "lower", "toupper": "upper", "tolower": "lower", "trim": "strip",
    "contains": "in", "includes": "in", "has_key": "in", "indexOf": "index", "charAt": "[ ]", "forEach": "for",
    "substring": "[ : ]", "equals": "==", "toString": "str()", "iteritems": "items", "itervalues": "values",
    "iterkeys": "keys", "startWith": "startswith", "endWith": "endswith", "removeAll": "clear",
}
_NOT_METHODS = {"len()", "in", "[ ]", "[ : ]", "for", "==", "str()"}
_COMMON_TYPES = (str, list, dict, set, tuple, int, float)
_HINTS = {
    "len()": "To get the number of items, use `len(...)` around the value instead of `.{attr}`.",
    "in": "To check whether something is inside, use `in`, like `item in values` (not `.{attr}`).",
    "[ ]": "Use square brackets to get characters: `text[0]`, or `text[2:5]` for a slice.",
    "[ : ]": "Use square brackets to get characters: `text[0]`, or `text[2:5]` for a slice.",
    "for": "Use a `for` loop: `for item in values:`.",
    "==": "Compare values with `==`.",
    "str()": "Turn a value into text with `str(...)`.",
}


def _other_type_advice(type_name: str, attr: str, owner: type, target: str | None,
                       call: ast.Call | None = None) -> str:
    """What to do when ``.attr`` belongs to ``owner`` but the value is a ``type_name`` (``call``: the call
    ``target.attr(...)`` on the line, when there is one)."""
    t = target or "the value"
    if type_name == "str" and attr in ("append", "extend", "insert"):
        return ("Text can't be changed in place: make a new text instead, like "
                f"{propose(t + ' = ' + t + ' + ' + repr('more'))} (or `+=`)." if target else
                "Text can't be changed in place: make a new text with `+`.")
    if type_name == "str" and attr == "reverse":
        return f"To reverse a text, make a reversed copy: {code(t + '[::-1]')}."
    if type_name == "str" and attr == "sort":
        return f"To sort the characters of a text, use {code('sorted(' + t + ')')} (it gives a list), or " \
               f"{code(chr(39) + chr(39) + '.join(sorted(' + t + '))')} for a text."
    if type_name == "tuple" and attr in ("append", "extend", "insert", "remove", "sort"):
        return "A tuple can't be changed once made. Use a list (square brackets `[...]`) if it has to change."
    if type_name == "set" and attr == "append":
        return "Add an item to a set with `.add(item)`."
    if type_name == "dict" and attr == "append":
        return "A dictionary stores a value under a key: `d[key] = value`."
    if type_name == "list" and owner is str and attr == "join" and target:
        # `.join` belongs to the separator and takes the list: `", ".join(words)`, not `words.join(", ")`
        if call is not None and len(call.args) == 1 and not call.keywords:
            return (f"`.join` is a method of the text that goes between the items, and the list goes inside "
                    f"the brackets: {propose(snippet(call.args[0]) + '.join(' + target + ')')}.")
        return f"`.join` is a method of the separator text: write {code(repr(', ') + '.join(' + t + ')')}."
    if type_name == "list" and owner is str and target:
        args = "" if call is None else ", ".join(
            [snippet(a) for a in call.args] + [f"{k.arg}={snippet(k.value)}" if k.arg else f"**{snippet(k.value)}"
                                               for k in call.keywords])
        return (f"`.{attr}()` works on one text at a time; for every item of the list, write "
                f"{propose('[item.' + attr + '(' + args + ') for item in ' + target + ']')}.")
    if type_name in ("int", "float") and owner is str:
        return f"Turn the number into text first: {code('str(' + t + ').' + attr + '()')}."
    if type_name == "str" and owner in (int, float):
        return "Turn the text into a number first, with `int(...)` or `float(...)`."
    return f"Check that {code(t)} holds the kind of value you expect: print `type({t})` before this line."


def _call(ctx: Context, attr: str, target: str | None) -> ast.Call | None:
    for node in ctx.nodes_on_line(ast.Call):
        if isinstance(node.func, ast.Attribute) and node.func.attr == attr and snippet(node.func.value) == target:
            return node
    return None


def _target(ctx: Context, attr: str) -> str | None:
    for node in ctx.nodes_on_line(ast.Attribute):
        if node.attr == attr:
            return snippet(node.value)
    return None


@rule(AttributeError, kinds=(*NONE_KINDS, "attribute-typo", "wrong-type-method", "misspelt-init",
                             "unknown-attribute"))
def attribute_error(ctx: Context) -> Diagnosis | None:
    err = ctx.error
    attr = getattr(err, "name", None)
    has_obj = False
    obj = None
    try:
        obj = err.obj  # type: ignore[attr-defined]
        has_obj = True
    except Exception:
        pass
    m = re.match(r"'(\w+)' object has no attribute '(\w+)'", ctx.message)
    mm = re.match(r"module '([\w.]+)' has no attribute '(\w+)'", ctx.message)
    if not isinstance(attr, str):
        attr = (m or mm).group(2) if (m or mm) else None
    if attr is None:
        return None
    if m:
        type_name = m.group(1)
    elif mm:
        type_name = "module"
    else:
        type_name = type(obj).__name__ if has_obj and obj is not None else None
    if has_obj and type_name is not None and (type(obj).__name__ != type_name or (mm and obj is None)):
        has_obj, obj = False, None  # AttributeError.obj defaults to None when nobody set it
    if not has_obj:
        if mm and mm.group(1) in sys.modules:
            obj, has_obj = sys.modules[mm.group(1)], True
        elif type_name in ("list", "str", "dict", "tuple", "set", "int", "float"):
            obj, has_obj = getattr(builtins, type_name), True
        elif type_name == "NoneType":
            obj, has_obj = None, True
    if type_name == "NoneType":
        return none_rule(ctx, f"`None` has no attribute `{attr}`")
    line = ctx.line
    if has_obj and isinstance(obj, type) and obj.__module__ != "builtins":
        type_name = obj.__name__
        if attr == obj.__name__:  # `from datetime import datetime`, then `datetime.datetime`
            public = sorted(n for n in vars(obj) if not n.startswith("_"))
            example = next((n + "()" for n in ("now", "today") if n in public), public[0] if public else "...")
            return Diagnosis(
                "unknown-attribute", f"{plain(attr)} is already the class, not the module{on(line)}",
                f"{ctx.where(True)} `{attr}.{attr}` is used, but `{attr}` here is the class `{obj.__module__}.{attr}` "
                f"itself (brought in by `from {obj.__module__} import {attr}`), not the module `{obj.__module__}`. The "
                "module and its class have the same name.",
                line, f"Drop one `{attr}.`, like {code(attr + '.' + example)}; or write `import {obj.__module__}` to "
                      f"use `{obj.__module__}.{attr}`.")
    what = f"module `{mm.group(1)}`" if mm else type_word(type_name or "object")
    shown_type = mm.group(1) if mm else type_name or "This value"
    names: list[str] = []
    if has_obj:
        try:
            names = [n for n in safe_dir(obj) if isinstance(n, str) and not n.startswith("_")][:MAX_NAMES]
        except Exception:
            names = []
    title = f"{plain(shown_type)} has no attribute '{plain(attr)}'{on(line)}"
    guess = python_hint(ctx.message)
    other = _OTHER_LANGUAGES.get(attr)
    if other and (other in _NOT_METHODS or other in names):
        guess = other
    if guess is None and not mm and type_name in {t.__name__ for t in _COMMON_TYPES}:
        owners = [t for t in _COMMON_TYPES if t.__name__ != type_name and attr in dir(t)]
        if owners:
            owner = owners[0]
            target = _target(ctx, attr)
            subject = code(target) if target else "the value"
            return Diagnosis(
                "wrong-type-method", title,
                f"`.{attr}` is a method of {type_word(owner.__name__)}, but {ctx.where()} {subject} is "
                f"{type_word(type_name)}. Each type has its own methods.",
                line, _other_type_advice(type_name, attr, owner, target, _call(ctx, attr, target)))
    if guess is None and mm and has_obj:
        for member in names[:2000]:
            try:
                value = vars(obj).get(member)
            except Exception:
                break
            if isinstance(value, type) and attr in vars(value):
                call = "()" if callable(vars(value)[attr]) else ""
                return Diagnosis(
                    "wrong-type-method", title,
                    f"The module `{mm.group(1)}` has no `{attr}` of its own, but its class `{member}` has. "
                    f"A module and a class inside it can have the same name, like `{mm.group(1)}.{member}`.",
                    line, f"Write {propose(f'{mm.group(1)}.{member}.{attr}' + call)}, or import the class with "
                          f"{propose('from ' + mm.group(1) + ' import ' + member)}.")
    guess = guess or close(attr, names, cutoff=0.6)
    if guess:
        hint = _HINTS.get(guess, "Did you mean `.{guess}`?").format(attr=attr, guess=guess)
        return Diagnosis(
            "attribute-typo", title,
            f"{ctx.where(True)} you use `.{attr}` on {what}, but {what} has no method or attribute with that "
            "name. Names after the dot must match exactly, and some names from other languages are different "
            "in Python.",
            line, hint)
    init = misspelt_init(type(obj)) if has_obj and obj is not None else None
    if init:
        return Diagnosis(
            "misspelt-init", f"{plain(shown_type)} has no attribute '{plain(attr)}': __init__ is misspelt",
            f"The class `{type_name}` has a method `{init}`, which looks like `__init__` but isn't spelt the same. "
            "So Python never ran it when the object was made, and the attributes it sets don't exist.",
            line, f"Rename `{init}` to `__init__` (two underscores on each side).")
    own = _own_attributes(obj) if has_obj else None
    if own is not None:
        has = ", ".join(f"`{n}`" for n in own[:6]) if own else "no attributes at all"
        return Diagnosis(
            "unknown-attribute", title,
            f"{ctx.where(True)} `.{attr}` is read from a `{type_name}` object, which has {has}. An object only has "
            f"the attributes that a line like `self.{attr} = ...` gave it, in `__init__` or a method that has run.",
            line, f"Set `self.{attr} = ...` in `__init__` of `{type_name}` (or in the method that should make it), "
                  "or use one of the attributes it has.")
    return Diagnosis(
        "unknown-attribute", title,
        f"{ctx.where(True)} you use `.{attr}` on {what}, but it has no method or attribute with that name. "
        "Maybe the value is not the type you expected.",
        line, "Print the value and its `type(...)` just before this line to see what it is, "
              "and `dir(...)` to list what it has.")


def misspelt_init(cls: object) -> str | None:
    """The name of a method of the class ``cls`` that was meant to be ``__init__``, if there is one."""
    if not isinstance(cls, type) or cls.__module__ == "builtins":
        return None
    try:
        for klass in cls.__mro__[:-1]:
            if "__init__" in vars(klass):
                return None
            for name, value in vars(klass).items():
                unmangled = name.removeprefix(f"_{klass.__name__}")  # `__init` in a class is stored mangled
                bare = unmangled.replace("_", "").lower()
                if bare in ("init", "int", "innit", "inti", "intit", "initi", "ini") and callable(value):
                    return unmangled
    except Exception:
        return None
    return None


def _own_attributes(obj: object) -> list[str] | None:
    """The attribute names of an object of the student's own class (its ``__dict__``), else ``None``."""
    if isinstance(obj, type) or type(obj).__module__ in ("builtins", "types"):
        return None
    try:
        fields = object.__getattribute__(obj, "__dict__")
    except Exception:
        return None
    if not isinstance(fields, dict):
        return None
    return [n for n in fields if isinstance(n, str) and not n.startswith("_")]


def safe_dir(obj: object) -> list[str]:
    """``dir(obj)``, unless the object's class overrides how its attributes are listed or read (that would
    run the student's code); then nothing."""
    cls = type(obj)
    for name in ("__dir__", "__getattribute__", "__getattr__"):
        if any(name in vars(k) for k in cls.__mro__ if k.__module__ != "builtins" and k is not type):
            return []
    try:
        return dir(obj)
    except Exception:
        return []
