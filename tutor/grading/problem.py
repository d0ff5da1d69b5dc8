"""Practice problems as plain data, and their validation.

A problem is a dict (JSON-able, so teachers can write it by hand and a model can generate it):

    {
      "id": "sum_list",                      # unique, lowercase letters, digits and _
      "title": "Add up a list",
      "topic": "lists",                      # one of TOPICS
      "level": 1,                            # 1 (first steps) to 3 (stretch)
      "statement": "Write `sum_list(numbers)` ...",   # Markdown
      "function": "sum_list",                # the function (or class) the student writes
      "starter": "def sum_list(numbers):\n    ...\n",
      "solution": "def sum_list(numbers):\n    return sum(numbers)\n",
      "public_tests": [ ... ],               # shown to the student, failures named precisely
      "hidden_tests": [ ... ],               # reported by count only, never by content
      "hints": ["nudge", "concept", "pseudo-code", "partial code"]
    }

Code and Markdown fields may also be lists of lines, which reads better in a JSON file.

A test is one of:

    {"args": [[1, 2, 3]], "kwargs": {}, "expected": 6}           # JSON arguments, JSON expected value
    {"call": "sum_list((1, 2))", "expected": 3}                  # a Python expression
    {"call": "pairs('ab')", "expected_literal": "[('a', 'b')]"}  # Python literal, for tuples, sets, int keys
    {"setup": "s = Stack()\\ns.push(4)", "call": "s.pop()", "expected": 4}   # classes: setup, then a call
    {"check": "s = Stack()\\nassert s.is_empty()"}               # assertion snippet: passes if nothing raises

The call's value is compared with the expected value in the grading process, never in the
student's process, so hidden expected values never reach the student's code. For the same reason
`check` snippets (whose expected values sit inside the code) are allowed in public tests only.
Numbers compare with a small tolerance for floats; otherwise types must match (a tuple is not a list).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOPICS = (
    "variables",
    "strings",
    "conditionals",
    "loops",
    "functions",
    "lists",
    "dicts",
    "comprehensions",
    "recursion",
    "classes",
)
LEVELS = (1, 2, 3)
HINT_LADDER = ("nudge", "concept", "pseudo-code", "partial code")

_REQUIRED = ("id", "title", "topic", "level", "statement", "function", "starter", "solution",
             "public_tests", "hidden_tests", "hints")
_TEST_KEYS = {"args", "kwargs", "call", "setup", "check", "expected", "expected_literal"}
_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class ProblemFormatError(ValueError):
    """A problem definition that cannot be used; the message says where and what to change."""


@dataclass(frozen=True)
class Case:
    """One test case, normalised: optional setup statements, then a call expression or a check snippet."""

    call: str = ""
    expected: Any = None
    setup: str = ""
    check: str = ""

    @property
    def shown(self) -> str:
        """How the case is named in feedback."""
        if self.check:
            return self.check.strip()
        return f"{self.setup.strip()}\n{self.call}" if self.setup.strip() else self.call

    @property
    def expected_shown(self) -> str:
        return "no error" if self.check else repr(self.expected)


@dataclass(frozen=True)
class Problem:
    id: str
    title: str
    topic: str
    level: int
    statement: str
    function: str
    starter: str
    solution: str
    public_tests: tuple[Case, ...]
    hidden_tests: tuple[Case, ...]
    hints: tuple[str, str, str, str]
    source: Path | None = None
    prelude: str = ""  # code run before the student's (a lesson's worked examples that its tests use); not shown

    def hint(self, rung: int) -> str:
        """The hint at `rung` of the ladder (0 = nudge ... 3 = partial code)."""
        return self.hints[max(0, min(rung, len(self.hints) - 1))]


def _text(value: Any, where: str) -> str:
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(value) + ("\n" if value else "")
    if isinstance(value, str):
        return value
    raise ProblemFormatError(f"{where} must be text (a string or a list of lines), not {type(value).__name__}")


def _parse(source: str, mode: str, where: str) -> None:
    try:
        ast.parse(source, mode=mode)
    except SyntaxError as e:
        raise ProblemFormatError(f"{where} is not valid Python ({e.msg}, line {e.lineno}): {source!r}") from None


def _call_from_args(function: str, args: Any, kwargs: Any, where: str) -> str:
    if not isinstance(args, list):
        raise ProblemFormatError(f"{where}: 'args' must be a list of arguments, e.g. [[1, 2, 3]] for one list")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) and k.isidentifier() for k in kwargs):
        raise ProblemFormatError(f"{where}: 'kwargs' must map parameter names to values")
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{function}({', '.join(parts)})"


def case_from_dict(data: Any, function: str, where: str, *, hidden: bool = False) -> Case:
    """Validate and normalise one test dict (see the module docstring for the forms)."""
    if not isinstance(data, Mapping):
        raise ProblemFormatError(f"{where} must be an object like {{\"args\": [...], \"expected\": ...}}")
    unknown = set(data) - _TEST_KEYS
    if unknown:
        raise ProblemFormatError(f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(_TEST_KEYS)}")
    setup = _text(data.get("setup", ""), f"{where} 'setup'")
    if setup:
        _parse(setup, "exec", f"{where} 'setup'")
    if "check" in data:
        if hidden:
            raise ProblemFormatError(
                f"{where}: hidden tests cannot be 'check' snippets (their expected values would sit in the "
                "student's process); write 'setup' + 'call' + 'expected' instead")
        if set(data) - {"check", "setup"}:
            raise ProblemFormatError(f"{where}: a 'check' test takes only 'check' (and 'setup'), no call or expected")
        check = _text(data["check"], f"{where} 'check'")
        _parse(check, "exec", f"{where} 'check'")
        return Case(check=check, setup=setup)

    if ("call" in data) == ("args" in data or "kwargs" in data):
        raise ProblemFormatError(f"{where} needs exactly one of 'call' (an expression) or 'args'/'kwargs'")
    if "call" in data:
        if not isinstance(data["call"], str) or not data["call"].strip():
            raise ProblemFormatError(f"{where}: 'call' must be a Python expression such as \"{function}(2, 3)\"")
        call = data["call"].strip()
        _parse(call, "eval", f"{where} 'call'")
    else:
        call = _call_from_args(function, data.get("args", []), data.get("kwargs", {}), where)

    if ("expected" in data) == ("expected_literal" in data):
        raise ProblemFormatError(f"{where} needs exactly one of 'expected' (JSON) or 'expected_literal' (Python)")
    if "expected" in data:
        expected = data["expected"]
    else:
        try:
            expected = ast.literal_eval(data["expected_literal"])
        except (ValueError, SyntaxError, TypeError):
            raise ProblemFormatError(
                f"{where}: 'expected_literal' must be a Python literal such as \"(1, 2)\", "
                f"got {data['expected_literal']!r}") from None
    return Case(call=call, expected=expected, setup=setup)


def problem_from_dict(data: Any, source: Path | None = None) -> Problem:
    """Validate a problem dict and return a Problem; raises ProblemFormatError naming what is wrong."""
    origin = f" ({source})" if source else ""
    if not isinstance(data, Mapping):
        raise ProblemFormatError(f"a problem must be an object with fields {list(_REQUIRED)}{origin}")
    name = data.get("id", "?")
    where = f"problem {name!r}{origin}"
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ProblemFormatError(f"{where} is missing {', '.join(repr(m) for m in missing)}")
    unknown = set(data) - set(_REQUIRED)
    if unknown:
        raise ProblemFormatError(f"{where} has unknown fields {sorted(unknown)}")
    if not isinstance(name, str) or not _ID.match(name):
        raise ProblemFormatError(f"{where}: 'id' must be lowercase letters, digits and _, starting with a letter")
    if data["topic"] not in TOPICS:
        raise ProblemFormatError(f"{where}: topic {data['topic']!r} is not one of {', '.join(TOPICS)}")
    level = data["level"]
    if isinstance(level, bool) or level not in LEVELS:
        raise ProblemFormatError(f"{where}: level must be 1, 2 or 3, not {level!r}")
    function = data["function"]
    if not isinstance(function, str) or not function.isidentifier():
        raise ProblemFormatError(f"{where}: 'function' must be the name of a function or class, not {function!r}")
    texts = {k: _text(data[k], f"{where} '{k}'") for k in ("title", "statement", "starter", "solution")}
    for k in ("title", "statement", "solution"):
        if not texts[k].strip():
            raise ProblemFormatError(f"{where}: '{k}' is empty")
    _parse(texts["solution"], "exec", f"{where} 'solution'")
    # The starter need not be complete, but it must at least parse, or students start from an error.
    _parse(texts["starter"], "exec", f"{where} 'starter'")

    tests: dict[str, tuple[Case, ...]] = {}
    for kind in ("public_tests", "hidden_tests"):
        raw = data[kind]
        if not isinstance(raw, list) or not raw:
            raise ProblemFormatError(f"{where}: '{kind}' must be a non-empty list of tests")
        tests[kind] = tuple(
            case_from_dict(t, function, f"{where} {kind[:-6]} test {i + 1}", hidden=kind == "hidden_tests")
            for i, t in enumerate(raw))

    hints = data["hints"]
    if (not isinstance(hints, list) or len(hints) != len(HINT_LADDER)
            or not all(isinstance(h, str) and h.strip() for h in hints)):
        raise ProblemFormatError(f"{where}: 'hints' must be {len(HINT_LADDER)} texts: {', '.join(HINT_LADDER)}")

    return Problem(id=name, topic=data["topic"], level=level, function=function,
                   public_tests=tests["public_tests"], hidden_tests=tests["hidden_tests"],
                   hints=tuple(hints), source=source, **texts)


def load_problems(path: str | Path) -> list[Problem]:
    """Problems from a JSON file holding one problem object or a list of them."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ProblemFormatError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}") from None
    items = data if isinstance(data, list) else [data]
    return [problem_from_dict(item, source=path) for item in items]
