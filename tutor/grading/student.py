"""What a student's kernel may hold of a problem, and grading from that.

The kernel's registry (the practice magics' current problem) holds a `StudentProblem`: the statement,
the starter, the public tests, the hint ladder and how many hidden tests there are, never the
solution or the hidden tests. `grade_student` loads those from where the problem came from (the
bank, the teacher's file) for the one grading call, or sends the code to the class server when one
offers grading (remote.py), where the hidden tests never reach the student's machine at all.

In self-paced mode the bank and the problem files are on the student's own disk: "hidden" there
means not shown, not secret (docs/practice.md says so).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .bank import BANK_DIR, load_bank
from .grade import GradeReport, grade
from .problem import Case, Problem, load_problems
from .sandbox import DEFAULT_LIMITS, Limits


@dataclass(frozen=True)
class StudentProblem:
    id: str
    title: str
    topic: str
    level: int
    statement: str
    function: str
    starter: str
    public_tests: tuple[Case, ...]
    hints: tuple[str, ...]
    hidden_total: int
    origin: str  # "bank", "file" (a teacher's or a generated problem) or "lesson" (a student copy's exercise)
    source: Path | None = None
    prelude: str = ""  # a lesson's worked examples before the exercise, as the student copy has them

    def hint(self, rung: int) -> str:
        """The hint at `rung` of the ladder (0 = nudge ... 3 = partial code)."""
        return self.hints[max(0, min(rung, len(self.hints) - 1))]


def student_view(problem: Problem, origin: str | None = None) -> StudentProblem:
    """The parts of `problem` a student may see."""
    if origin is None:
        in_bank = problem.source is not None and problem.source.resolve().parent == BANK_DIR
        origin = "bank" if in_bank or problem.source is None else "file"
    return StudentProblem(problem.id, problem.title, problem.topic, problem.level, problem.statement,
                          problem.function, problem.starter, problem.public_tests, problem.hints,
                          len(problem.hidden_tests), origin, problem.source, problem.prelude)


def problem_to_dict(problem: Problem) -> dict:
    """A problem as the JSON the problem format reads (expected values as Python literals)."""
    def case(c: Case) -> dict:
        if c.check:
            return {"check": c.check, **({"setup": c.setup} if c.setup else {})}
        return {"call": c.call, "expected_literal": repr(c.expected), **({"setup": c.setup} if c.setup else {})}

    return {"id": problem.id, "title": problem.title, "topic": problem.topic, "level": problem.level,
            "statement": problem.statement, "function": problem.function, "starter": problem.starter,
            "solution": problem.solution, "public_tests": [case(c) for c in problem.public_tests],
            "hidden_tests": [case(c) for c in problem.hidden_tests], "hints": list(problem.hints)}


def keep_private(problem: Problem) -> StudentProblem:
    """A generated problem: written to a file only this user can read, and known to the kernel by its view."""
    folder = Path(tempfile.gettempdir()) / f"tutor-problems-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{problem.id}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(problem_to_dict(problem), f)
    return student_view(Problem(**{**problem.__dict__, "source": path}), origin="file")


def load_full(view: StudentProblem) -> Problem:
    """The whole problem behind a view, for one grading call; a lesson exercise has only its public tests here."""
    if view.origin == "bank":
        return load_bank(view.source.parent if view.source else None).get(view.id)
    if view.origin == "file" and view.source is not None:
        for problem in load_problems(view.source):
            if problem.id == view.id:
                return problem
        raise KeyError(f"{view.source} no longer holds the problem {view.id!r}")
    # a lesson's student copy holds no hidden test and no solution: its visible tests are all there is here
    return Problem(view.id, view.title, view.topic, view.level, view.statement, view.function, view.starter,
                   "", view.public_tests, (), tuple(view.hints), view.source, view.prelude)


def grade_student(view: StudentProblem, code: str, limits: Limits = DEFAULT_LIMITS) -> GradeReport:
    """Grade on this machine: the hidden parts are read from the problem's file for this call only."""
    return grade(load_full(view), code, limits)
