"""Grade a student's code against a problem's tests, and check a problem's own reference solution.

Public and hidden tests run in two separate sandbox processes. Whatever the student's code
records while the hidden tests run (their arguments, say) dies with that process: nothing it says
is shown, not what it printed, not its errors, not its exit code; only the count of passed hidden
tests comes back, and, if the run did not finish, one fixed sentence per kind of ending
(HIDDEN_MESSAGES). Public tests' results, output and errors are shown in full.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .problem import Case, Problem
from .sandbox import DEFAULT_LIMITS, Limits, RunResult, run_code

_PACKAGE_DIR = Path(__file__).resolve().parent
_SHOWN_CHARS = 300  # long values are cut in feedback, never in comparison
_MAX_LITERAL = 200_000  # a repr longer than the harness sends is not parsed at all

# How a hidden run ended, in words that carry nothing the student's code chose.
HIDDEN_MESSAGES = {
    "timeout": "During the hidden tests: your code ran out of time.",
    "memory": "During the hidden tests: your code used too much memory.",
    "output": "During the hidden tests: your code printed too much.",
    "file_too_large": "During the hidden tests: your code tried to write a file that is too big.",
    "processes": "During the hidden tests: your code tried to start too many processes.",
    "network": "During the hidden tests: your code tried to use the network.",
    "recursion": "During the hidden tests: your function called itself too many times.",
    "crashed": "During the hidden tests: your code stopped before all of them ran.",
    "interfered": "During the hidden tests: your code wrote on the grader's own channel, so grading stopped.",
    "syntax_error": "During the hidden tests: your code could not be read.",
    "load_error": "During the hidden tests: your code raised an error before the tests ran.",
}


@dataclass(frozen=True)
class PublicTestResult:
    call: str  # how the test is named: the call, with any setup lines before it
    expected: str  # repr of the expected value
    got: str | None  # repr of the value returned, None if it raised or did not run
    passed: bool
    error: str | None = None  # "ZeroDivisionError: division by zero (line 3 of your code)", or why it did not run


@dataclass(frozen=True)
class GradeReport:
    problem_id: str
    status: str  # the public run's status (see sandbox.STATUS_MESSAGES), or the hidden run's if that one failed
    message: str
    public: tuple[PublicTestResult, ...]
    hidden_passed: int
    hidden_total: int
    output: str  # what the code printed during the public tests
    seconds: float

    @property
    def public_passed(self) -> int:
        return sum(r.passed for r in self.public)

    @property
    def passed(self) -> bool:
        return self.public_passed == len(self.public) and self.hidden_passed == self.hidden_total

    def feedback(self) -> str:
        """Plain-text feedback for the student: failing public tests by name, hidden tests by count."""
        lines = [] if self.status == "completed" else [self.message, ""]
        lines.append(f"Public tests: {self.public_passed} of {len(self.public)} passed.")
        for r in self.public:
            if r.passed:
                continue
            lines.append("")
            lines.append("Failed: " + r.call.replace("\n", "\n        "))
            lines.append(f"  expected: {_cut(r.expected)}")
            if r.error:
                lines.append(f"  error:    {_cut(r.error)}")
            else:
                lines.append(f"  got:      {_cut(r.got or '')}")
        lines.append("")
        lines.append(f"Hidden tests: {self.hidden_passed} of {self.hidden_total} passed. There are "
                     f"{self.hidden_total} hidden tests you cannot see; passing the public tests does not "
                     "guarantee passing them.")
        if self.passed:
            lines.append("All tests passed. Well done!")
        return "\n".join(lines)


def _cut(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + " ..."


def same_value(got: Any, expected: Any) -> bool:
    """Equality for grading: floats within a small tolerance, otherwise types must match (bool is not int)."""
    numbers = (int, float)
    if isinstance(got, bool) or isinstance(expected, bool):
        return type(got) is type(expected) and got == expected
    if isinstance(got, numbers) and isinstance(expected, numbers):
        if isinstance(got, float) or isinstance(expected, float):
            return math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9)
        return got == expected
    if type(got) is not type(expected):
        return False
    if isinstance(expected, (list, tuple)):
        return len(got) == len(expected) and all(same_value(g, e) for g, e in zip(got, expected, strict=True))
    if isinstance(expected, dict):
        return got.keys() == expected.keys() and all(same_value(got[k], v) for k, v in expected.items())
    return got == expected


def _passes(case: Case, outcome) -> bool:
    if not outcome.ok:
        return False
    if case.check:
        return True
    if outcome.repr is None or len(outcome.repr) > _MAX_LITERAL:
        return False
    try:
        # Compare the literal the child printed, never a live object: a student's object cannot
        # answer "equal" to everything from here.
        got = ast.literal_eval(outcome.repr)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, OverflowError):
        return False
    try:
        return same_value(got, case.expected)
    except RecursionError:
        return False


def _public_results(cases: Sequence[Case], run: RunResult) -> tuple[PublicTestResult, ...]:
    results = []
    for i, case in enumerate(cases):
        outcome = run.outcomes[i] if i < len(run.outcomes) else None
        if outcome is None:
            if run.status == "syntax_error":
                why = "not run: your code has a syntax error"
            elif run.status == "load_error" or run.load_error is not None:
                why = "not run: your code raised an error before the tests"
            elif i == len(run.outcomes):
                why = f"stopped while running this test: {run.message}"
            else:
                why = "not run: an earlier test stopped the run"
            results.append(PublicTestResult(case.shown, case.expected_shown, None, False, why))
            continue
        error = None
        if not outcome.ok:
            where = f" (line {outcome.line} of your code)" if outcome.line else ""
            error = f"{outcome.error}{where}"
        results.append(PublicTestResult(case.shown, case.expected_shown, outcome.repr, _passes(case, outcome), error))
    return tuple(results)


def _hide_for(problem: Problem) -> list[Path]:
    # The whole package (the curated bank lives in it) and the folder the problem came from.
    hide = [_PACKAGE_DIR]
    if problem.source is not None:
        hide.append(problem.source.resolve().parent)
    return hide


def grade(problem: Problem, student_code: str, limits: Limits = DEFAULT_LIMITS) -> GradeReport:
    """Run `student_code` against the problem's public tests, then (separately) its hidden tests."""
    hide = _hide_for(problem)
    public_run = run_code(student_code, problem.public_tests, limits, hide=hide, prelude=problem.prelude)
    public = _public_results(problem.public_tests, public_run)
    status, message, seconds = public_run.status, public_run.message, public_run.seconds
    hidden_passed = 0
    if public_run.status not in ("syntax_error", "load_error"):
        hidden_run = run_code(student_code, problem.hidden_tests, limits, hide=hide, keep_output=False,
                              prelude=problem.prelude)
        hidden_passed = sum(_passes(c, o) for c, o in zip(problem.hidden_tests, hidden_run.outcomes, strict=False))
        seconds += hidden_run.seconds
        if status == "completed" and hidden_run.status != "completed":
            # Say how the hidden run ended (a fixed message), never which test or what it did.
            status = hidden_run.status
            message = HIDDEN_MESSAGES.get(status, HIDDEN_MESSAGES["crashed"])
    return GradeReport(problem.id, status, message, public, hidden_passed, len(problem.hidden_tests),
                       public_run.output, seconds)


@dataclass(frozen=True)
class ReferenceCheck:
    """Whether a problem's reference solution passes its own tests (required before offering it)."""

    problem_id: str
    ok: bool
    status: str
    message: str
    failures: tuple[str, ...]  # one line per failing test, for the teacher or the generator: content included
    seconds: float


def check_solution(problem: Problem, code: str, limits: Limits = DEFAULT_LIMITS) -> ReferenceCheck:
    """Run `code` against all of the problem's tests in one sandbox run; the report names every test,
    hidden ones included, so it is for teachers and generators, never for students."""
    cases = problem.public_tests + problem.hidden_tests
    run = run_code(code, cases, limits, hide=_hide_for(problem), prelude=problem.prelude)
    failures = []
    for i, case in enumerate(cases):
        label = f"{'public' if i < len(problem.public_tests) else 'hidden'} test {case.shown!r}"
        outcome = run.outcomes[i] if i < len(run.outcomes) else None
        if outcome is None:
            failures.append(f"{label}: not run ({run.status})")
        elif not _passes(case, outcome):
            got = outcome.error if not outcome.ok else outcome.repr
            failures.append(f"{label}: expected {case.expected_shown}, got {got}")
    ok = not failures and run.status == "completed"
    return ReferenceCheck(problem.id, ok, run.status, run.message, tuple(failures), run.seconds)


def run_reference(problem: Problem, limits: Limits = DEFAULT_LIMITS) -> ReferenceCheck:
    """Whether the problem's reference solution passes all its own tests (offer a generated problem only if so)."""
    return check_solution(problem, problem.solution, limits)
