"""Grading on the class server: `tutor serve --problems DIR`.

DIR holds the teacher's problems: JSON problem files (tutor.grading.problem's format, the bank's)
and lesson teacher copies (*.ipynb, their exercises as lessons.lesson_problems makes them). They are
read here, in the server's process: solutions and hidden tests never leave it. A student's `%%check`
posts the code; the server grades it in its own sandbox and answers with the report, hidden tests by
count only (tutor.grading.remote describes the two endpoints).

Sandbox runs block, so they run on a small thread pool; a class of 30 pressing Check at once queues
here rather than starting 60 sandboxes.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..engine.errors import TutorError
from ..grading import DEFAULT_LIMITS, Limits, Problem, ProblemFormatError, grade, load_problems
from ..grading.remote import MAX_CODE_CHARS, report_to_dict
from ..grading.sandbox import SandboxError
from .app import BaseHandler
from .schema import RequestSchemaError, check_tree, parse_body

MAX_BODY_BYTES = 4 * MAX_CODE_CHARS + 1024


class GradingService:
    """The teacher's problems, loaded once, and a pool that grades against them."""

    def __init__(self, folder: str | Path, *, limits: Limits = DEFAULT_LIMITS, workers: int = 2):
        folder = Path(folder)
        if not folder.is_dir():
            raise TutorError(f"--problems {folder}: no such folder; give the folder of your problem files "
                             "(*.json) and lesson teacher copies (*.ipynb).")
        problems: dict[str, Problem] = {}
        for path in sorted(folder.glob("*.json")) + sorted(folder.glob("*.ipynb")):
            try:
                if path.suffix == ".json":
                    found = load_problems(path)
                else:
                    from ..lessons import lesson_problems

                    found = lesson_problems(path)
            except (ProblemFormatError, TutorError) as exc:
                raise TutorError(f"--problems: {exc}") from None
            for problem in found:
                if problem.id in problems:
                    raise TutorError(f"--problems: the id {problem.id!r} is used twice ({problems[problem.id].source} "
                                     f"and {path}); ids must be unique.")
                problems[problem.id] = problem
        if not problems:
            raise TutorError(f"--problems {folder}: no problems found (*.json problem files, *.ipynb lessons).")
        self.problems = problems
        self.limits = limits
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grade")

    def public(self) -> list[dict[str, Any]]:
        """What students may see of each problem (never a solution or a hidden test)."""
        return [{"id": p.id, "title": p.title, "topic": p.topic, "level": p.level, "function": p.function,
                 "statement": p.statement, "starter": p.starter, "hidden_tests": len(p.hidden_tests),
                 "public_tests": [{"call": c.shown, "expected": c.expected_shown} for c in p.public_tests]}
                for p in self.problems.values()]

    async def grade(self, problem_id: str, code: str) -> dict[str, Any]:
        problem = self.problems[problem_id]
        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(self.executor, grade, problem, code, self.limits)
        return report_to_dict(report)


class _GradingHandler(BaseHandler):
    def initialize(self, state: Any, service: GradingService) -> None:  # type: ignore[override]
        super().initialize(state)
        self.service = service


class ProblemsHandler(_GradingHandler):
    def get(self) -> None:
        self.write({"object": "list", "data": self.service.public()})


class GradeHandler(_GradingHandler):
    body_limit = MAX_BODY_BYTES  # BaseHandler answers 413 from Content-Length, before the body is read

    async def post(self) -> None:
        if self.refused():
            return
        raw = self.body_bytes()
        if len(raw) > MAX_BODY_BYTES:
            return self.fail(413, f"the code is too long (at most {MAX_CODE_CHARS} characters).",
                             "invalid_request_error", "code")
        try:
            body = parse_body(raw or b"{}")
            if not isinstance(body, dict):
                raise RequestSchemaError("the body must be a JSON object: {\"problem\": ID, \"code\": CODE}.")
            check_tree(body)
        except RequestSchemaError as exc:
            return self.fail(400, str(exc), "invalid_request_error", exc.param)
        problem, code = body.get("problem"), body.get("code")
        if not isinstance(problem, str) or problem not in self.service.problems:
            return self.fail(404, f"no problem {problem!r} on this server.", "not_found_error", "problem")
        if not isinstance(code, str) or len(code) > MAX_CODE_CHARS:
            return self.fail(400, f"'code' must be text of at most {MAX_CODE_CHARS} characters.",
                             "invalid_request_error", "code")
        try:
            self.write(await self.service.grade(problem, code))
        except SandboxError as exc:  # the server's setup, not the student's code: the teacher reads the log
            print(f"tutor serve: grading failed: {exc}", flush=True)
            self.fail(503, "the grader is not working on the server; your teacher has been told.", "server_error")


def routes(state: Any, service: GradingService | None) -> list[tuple]:
    """The grading endpoints for make_app (none when the server has no --problems)."""
    if service is None:
        return []
    extra = {"state": state, "service": service}
    return [(r"/v1/grading/problems", ProblemsHandler, extra), (r"/v1/grading/grade", GradeHandler, extra)]
