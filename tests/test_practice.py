"""Practice: policy files, the guard on model replies (a scripted model answering with the solution),
hints, and generated problems checked in the sandbox before they are offered."""

from __future__ import annotations

import json

import pytest
from scripted import ScriptedBackend

from tutor.grading import load_bank
from tutor.tutoring.practice import Policy, generate_problem, guard_reply, load_policy, next_hint, pick_problem


@pytest.fixture(scope="module")
def bank():
    return load_bank()


@pytest.fixture(scope="module")
def problem(bank):
    return bank.get("largest")


def test_the_student_never_sees_the_solution_under_a_no_solutions_policy(problem):
    reply = f"Sure! Here it is:\n```python\n{problem.solution}\n```\nThat works."
    guarded = guard_reply(reply, problem, Policy())
    assert guarded.withheld and "def largest" not in guarded.text and "removed" in guarded.text
    # a rewritten (renamed, reformatted) solution is caught by running it against the tests
    other = ("def largest(values):\n    top = values[0]\n    for v in values:\n        top = v if v > top else top\n"
             "    return top\n")
    assert guard_reply(f"```python\n{other}```", problem, Policy()).withheld
    # code that does not solve the exercise, and any code under a permissive policy, stays
    small = "```python\nbest = numbers[0]\n```"
    assert guard_reply(small, problem, Policy()).text == small
    assert not guard_reply(reply, problem, Policy(allow_solutions=True)).withheld


def test_avoided_words_are_removed(problem):
    guarded = guard_reply("Just use max() or sorted() here.", problem, Policy(avoid_words=("max", "sorted")))
    assert guarded.text == "Just use [...]() or [...]() here." and "avoided" in guarded.reason


def test_model_hints_are_guarded_and_fall_back_to_written_ones(problem):
    backend = ScriptedBackend("What if every number is below zero?", f"```python\n{problem.solution}```")
    first = next_hint(problem, 0, Policy(), code="def largest(numbers):\n    pass", backend=backend)
    assert (first.source, first.name, first.text) == ("model", "nudge", "What if every number is below zero?")
    second = next_hint(problem, 1, Policy(), code="def largest(numbers):\n    pass", backend=backend)
    assert (second.source, second.text) == ("written", problem.hint(1))  # the solution was withheld
    assert next_hint(problem, 2, Policy()).text == problem.hint(2)  # no model: the written ladder
    with pytest.raises(ValueError, match="used all 2 hints"):
        next_hint(problem, 2, Policy(max_hints=2))
    with pytest.raises(ValueError, match="turned off"):
        next_hint(problem, 0, Policy(features=frozenset({"explain"})))


def test_policy_files(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"allow_solutions": False, "max_hints": 2, "avoid_words": ["max"],
                                "features": ["explain", "hints", "practice"]}))
    policy = load_policy(path)
    assert policy.max_hints == 2 and not policy.allows("chat") and policy.allows("hints")
    for bad, message in (({"max_hint": 2}, "unknown key 'max_hint'; did you mean 'max_hints'"),
                         ({"max_hints": 9}, "from 0 to 4"), ({"allow_solutions": "false"}, "true or false"),
                         ({"features": ["flying"]}, "'features'"), ([], "JSON object")):
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=message):
            load_policy(path)


GENERATED = {
    "id": "double_it", "title": "Double it", "topic": "functions", "level": 1,
    "statement": "Write `double(x)` that returns twice `x`.", "function": "double",
    "starter": "def double(x):\n    ...", "solution": "def double(x):\n    return 2 * x",
    "public_tests": [{"args": [1], "expected": 2}, {"args": [0], "expected": 0}, {"args": [-3], "expected": -6}],
    "hidden_tests": [{"args": [5], "expected": 10}, {"args": [2.5], "expected": 5.0}, {"args": [100], "expected": 200}],
    "hints": ["What is twice 3?", "Multiplication.", "return two times x", "return 2 * ..."],
}


def test_a_generated_problem_is_offered_only_if_its_solution_passes_its_tests(bank):
    wrong = dict(GENERATED, hidden_tests=[{"args": [5], "expected": 11}])  # its own solution fails this
    backend = ScriptedBackend("not json", json.dumps(wrong), "Here:\n" + json.dumps(GENERATED))
    problem, source = generate_problem(backend, "functions", 1, bank=bank)
    assert (source, problem.id) == ("model", "double_it")
    fallback, source = generate_problem(ScriptedBackend("no", "nope", "never"), "loops", 2, bank=bank, seed=1)
    assert source == "bank" and fallback.topic == "loops"


def test_pick_problem(bank):
    assert pick_problem(bank, "strings", 3, seed=0).topic == "strings"
    with pytest.raises(ValueError, match="no practice problems on 'knitting'"):
        pick_problem(bank, "knitting", None)
