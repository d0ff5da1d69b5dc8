"""Problem definitions are validated with messages that say what to fix."""

from __future__ import annotations

import copy
import json

import pytest

from tutor.grading import Case, ProblemFormatError, load_problems, problem_from_dict

GOOD = {
    "id": "add_two",
    "title": "Add two numbers",
    "topic": "functions",
    "level": 1,
    "statement": "Write `add(a, b)`.",
    "function": "add",
    "starter": ["def add(a, b):", "    ..."],
    "solution": "def add(a, b):\n    return a + b\n",
    "public_tests": [{"args": [2, 3], "expected": 5}, {"call": "add(1.5, 1)", "expected": 2.5}],
    "hidden_tests": [{"args": [[1], [2]], "expected_literal": "[1, 2]"},
                     {"setup": "x = 4", "call": "add(x, x)", "expected": 8}],
    "hints": ["nudge", "concept", "pseudo", "partial"],
}


def with_changes(**changes):
    data = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    return data


def test_a_good_problem_is_normalised():
    p = problem_from_dict(GOOD)
    assert p.starter == "def add(a, b):\n    ...\n"  # lists of lines become text
    assert p.public_tests[0] == Case(call="add(2, 3)", expected=5)
    assert p.hidden_tests[0].expected == [1, 2]
    assert p.hidden_tests[1].shown == "x = 4\nadd(x, x)"
    assert p.hint(0) == "nudge" and p.hint(9) == "partial"


def test_kwargs_become_part_of_the_call():
    case = problem_from_dict(with_changes(public_tests=[{"args": [1], "kwargs": {"b": 2}, "expected": 3}]))
    assert case.public_tests[0].call == "add(1, b=2)"


def test_tuples_and_sets_through_expected_literal():
    p = problem_from_dict(with_changes(public_tests=[{"call": "add((1,), (2,))", "expected_literal": "(1, 2)"}]))
    assert p.public_tests[0].expected == (1, 2)


@pytest.mark.parametrize(("changes", "words"), [
    ({"statement": None}, "missing 'statement'"),
    ({"level": 4}, "level must be 1, 2 or 3"),
    ({"level": True}, "level must be 1, 2 or 3"),
    ({"topic": "astrology"}, "not one of"),
    ({"id": "Bad Id"}, "'id' must be lowercase"),
    ({"function": "add numbers"}, "name of a function"),
    ({"hints": ["only", "three", "hints"]}, "'hints' must be 4 texts"),
    ({"solution": "def add(a, b)\n    return a + b"}, "'solution' is not valid Python"),
    ({"public_tests": []}, "non-empty list"),
    ({"public_tests": [{"args": [1, 2]}]}, "public test 1 needs exactly one of 'expected'"),
    ({"public_tests": [{"args": [1], "call": "add(1, 2)", "expected": 3}]}, "exactly one of 'call'"),
    ({"public_tests": [{"call": "add(1,", "expected": 3}]}, "public test 1 'call' is not valid Python"),
    ({"public_tests": [{"args": 5, "expected": 3}]}, "'args' must be a list"),
    ({"public_tests": [{"call": "add(1, 2)", "expect": 3}]}, "unknown keys ['expect']"),
    ({"public_tests": ["add(1, 2) == 3"]}, "public test 1 must be an object"),
    ({"hidden_tests": [{"call": "add(1, 1)", "expected_literal": "two"}]}, "must be a Python literal"),
    ({"hidden_tests": [{"check": "assert add(1, 1) == 2"}]}, "hidden tests cannot be 'check'"),
    ({"colour": "blue"}, "unknown fields ['colour']"),
])
def test_bad_problems_are_refused_with_a_useful_message(changes, words):
    with pytest.raises(ProblemFormatError, match="problem '") as info:  # names the problem
        problem_from_dict(with_changes(**changes))
    assert words in str(info.value)


def test_load_problems_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("[{\"id\": ", encoding="utf-8")
    with pytest.raises(ProblemFormatError, match="broken.json is not valid JSON"):
        load_problems(path)
    path.write_text(json.dumps([GOOD, with_changes(level=0)]), encoding="utf-8")
    with pytest.raises(ProblemFormatError, match=r"broken\.json.*level must be"):
        load_problems(path)
    path.write_text(json.dumps(GOOD), encoding="utf-8")
    [problem] = load_problems(path)
    assert problem.source == path
