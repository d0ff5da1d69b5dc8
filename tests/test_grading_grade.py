"""Grading: precise feedback on public tests, hidden tests by count only."""

from __future__ import annotations

import json
import sys

import pytest

from tutor.grading import Case, Limits, grade, load_bank, load_problems, run_code, run_reference, same_value

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")
FAST = Limits(cpu_seconds=1, wall_seconds=3)
SECRET = 987_654_321  # appears only in hidden expected values and the reference solution


@pytest.fixture(scope="module")
def secret_problem(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher")
    path = folder / "secret.json"
    path.write_text(json.dumps({
        "id": "triple", "title": "Triple", "topic": "functions", "level": 1,
        "statement": "Write `triple(n)`.", "function": "triple",
        "starter": "def triple(n):\n    ...\n",
        "solution": f"def triple(n):\n    # {SECRET}\n    return 3 * n\n",
        "public_tests": [{"args": [2], "expected": 6}, {"args": [0], "expected": 0}],
        "hidden_tests": [{"args": [SECRET // 3], "expected": SECRET}, {"args": [-5], "expected": -15},
                         {"setup": f"big = {SECRET // 3}", "call": "triple(big)", "expected": SECRET}],
        "hints": ["a", "b", "c", "d"],
    }), encoding="utf-8")
    [problem] = load_problems(path)
    return problem


def test_a_correct_solution_passes_everything(secret_problem):
    report = grade(secret_problem, "def triple(n):\n    return n * 3\n")
    assert report.passed and report.status == "completed"
    assert report.hidden_passed == report.hidden_total == 3
    assert "All tests passed" in report.feedback()


def test_feedback_names_failing_public_tests_precisely(secret_problem):
    report = grade(secret_problem, "def triple(n):\n    return n + 3\n", FAST)
    text = report.feedback()
    assert "Public tests: 0 of 2 passed." in text
    assert "Failed: triple(2)\n  expected: 6\n  got:      5" in text
    assert "Hidden tests: 0 of 3 passed. There are 3 hidden tests you cannot see" in text


def test_errors_in_public_tests_are_shown_with_the_line(secret_problem):
    report = grade(secret_problem, "def triple(n):\n    x = 1\n    return n / 0\n", FAST)
    failed = report.public[0]
    assert failed.error == "ZeroDivisionError: division by zero (line 3 of your code)"
    assert "error:    ZeroDivisionError" in report.feedback()


def test_syntax_errors_are_reported_without_running_tests(secret_problem):
    report = grade(secret_problem, "def triple(n)\n    return 3 * n\n", FAST)
    assert report.status == "syntax_error"
    assert report.feedback().startswith("Python could not read your code: expected ':' on line 1.")
    assert report.hidden_passed == 0


def test_a_timeout_names_the_test_that_was_running(secret_problem):
    report = grade(secret_problem, "def triple(n):\n    while n == 0:\n        pass\n    return 3 * n\n", FAST)
    assert report.status == "timeout"
    assert report.public[0].passed
    assert report.public[1].error.startswith("stopped while running this test: Your code ran out of time")


def test_always_equal_objects_do_not_pass(secret_problem):
    cheat = ("class Anything:\n    def __eq__(self, other):\n        return True\n"
             "def triple(n):\n    return Anything()\n")
    assert grade(secret_problem, cheat, FAST).public_passed == 0


HOSTILE = [
    # Prints and returns its arguments: during the hidden run that would be the hidden inputs.
    "def triple(n):\n    print('seen', n)\n    return repr(n)\n",
    # Harvests every number it can reach in its process: objects, frames, the harness's too.
    """import gc, sys
def triple(n):
    found = set()
    def take(values):
        if values is not found:
            found.update(repr(v) for v in list(values) if isinstance(v, int) and not isinstance(v, bool))
    for o in gc.get_objects():
        take(o.values() if isinstance(o, dict) else o if isinstance(o, (list, tuple, set)) else ())
    frame = sys._getframe()
    while frame:
        take(frame.f_locals.values())
        frame = frame.f_back
    return ' '.join(sorted(found))[:90000]
""",
    # Reads the teacher's file, and anything it can find of the grader's process.
    """import glob, os
def triple(n):
    found = []
    for path in glob.glob('/tmp/**/*.json', recursive=True) + glob.glob('/proc/*/cmdline') + ['/proc/1/environ']:
        try:
            with open(path, errors='replace') as f:
                found.append(f.read(20000))
        except OSError:
            pass
    return '\\n'.join(found)
""",
    # Raises an error that carries its input.
    "def triple(n):\n    raise ValueError(f'input was {n}')\n",
]


@pytest.mark.parametrize("code", HOSTILE)
def test_feedback_never_contains_hidden_test_content(secret_problem, code):
    report = grade(secret_problem, code, FAST)
    everything = report.feedback() + report.output + repr(report)
    assert str(SECRET) not in everything and str(SECRET // 3) not in everything
    assert report.hidden_total == 3


def test_run_reference_checks_a_generated_problem(secret_problem):
    assert run_reference(secret_problem).ok
    broken = load_bank().get("sum_to")
    wrong = type(broken)(**{**broken.__dict__, "solution": "def sum_to(n):\n    return n\n"})
    check = run_reference(wrong)
    assert not check.ok and any("expected 6, got 3" in f for f in check.failures)


@pytest.mark.parametrize(("got", "expected", "same"), [
    (0.1 + 0.2, 0.3, True), (2, 2.0, True), (True, 1, False), ((1, 2), [1, 2], False),
    ({"a": [1.0]}, {"a": [1]}, True), ([1, 2], [1, 2, 3], False), ("1", 1, False),
])
def test_same_value(got, expected, same):
    assert same_value(got, expected) is same


def test_the_harvester_would_find_a_value_that_reached_its_process():
    # Control for the test above: the snooping is real, the secret is simply never there.
    result = run_code(HOSTILE[1], [Case(call=f"triple({SECRET // 3})")], FAST)
    assert result.outcomes[0].ok, result.outcomes[0].traceback
    assert str(SECRET // 3) in result.outcomes[0].repr


def test_a_student_view_holds_no_solution_and_grading_reads_the_rest_from_the_file(secret_problem):
    from tutor.grading import grade_student, student_view
    from tutor.grading.student import keep_private, load_full

    view = student_view(secret_problem)
    assert view.origin == "file" and view.hidden_total == 3
    assert not hasattr(view, "solution") and not hasattr(view, "hidden_tests")
    assert str(SECRET) not in repr(view)
    report = grade_student(view, "def triple(n):\n    return n * 3\n", FAST)
    assert report.passed and report.hidden_total == 3
    assert load_full(view) == secret_problem

    private = keep_private(secret_problem)  # a generated problem: a file only this user can read
    assert private.source.stat().st_mode & 0o077 == 0
    assert load_full(private).hidden_tests == secret_problem.hidden_tests
    assert load_full(private).solution == secret_problem.solution
    bank_view = student_view(load_bank().get("sum_to"))
    assert bank_view.origin == "bank" and load_full(bank_view) == load_bank().get("sum_to")
