"""Grading on the class server: the teacher's problems and hidden tests stay there.

`tutor serve --problems DIR` offers (tutor/serving/grading.py):

    GET  /v1/grading/problems          {"object": "list", "data": [{public view}, ...]}
    POST /v1/grading/grade             {"problem": id, "code": str} -> a report (below)

The report is what GradeReport holds: public tests in full, hidden tests as two numbers, the
status and a message that for hidden runs is a fixed sentence (grade.HIDDEN_MESSAGES).
"""

from __future__ import annotations

from typing import Any

import httpx

from .grade import GradeReport, PublicTestResult

MAX_CODE_CHARS = 100_000  # a student's answer; more is refused by the server too


class GradingUnavailable(RuntimeError):
    """The class server could not grade (down, or it refused); the message is for the student."""


def report_to_dict(report: GradeReport) -> dict[str, Any]:
    return {"problem": report.problem_id, "status": report.status, "message": report.message,
            "public": [{"call": r.call, "expected": r.expected, "got": r.got, "passed": r.passed, "error": r.error}
                       for r in report.public],
            "hidden_passed": report.hidden_passed, "hidden_total": report.hidden_total,
            "output": report.output, "seconds": round(report.seconds, 3), "passed": report.passed}


def _text(value: Any, limit: int = 100_000) -> str:
    return str(value)[:limit] if value is not None else ""


def report_from_dict(data: Any) -> GradeReport:
    """A report from the server's JSON, checked field by field (a wrong shape is GradingUnavailable)."""
    try:
        public = tuple(PublicTestResult(_text(r["call"]), _text(r["expected"]),
                                        None if r.get("got") is None else _text(r["got"]), bool(r["passed"]),
                                        None if r.get("error") is None else _text(r["error"]))
                       for r in data["public"])
        hidden_passed, hidden_total = int(data["hidden_passed"]), int(data["hidden_total"])
        return GradeReport(_text(data["problem"]), _text(data["status"]), _text(data["message"]), public,
                           hidden_passed, hidden_total, _text(data.get("output", "")), float(data.get("seconds", 0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise GradingUnavailable(f"the class server's report could not be read ({exc.__class__.__name__}).") from None


class RemoteGrader:
    """A client of the class server's grading endpoint."""

    def __init__(self, endpoint: str, token: str | None = None, timeout: float = 60.0):
        base = endpoint.rstrip("/")
        self.base = base if base.endswith("/v1") else base + "/v1"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=5.0))
        self._problems: set[str] | None = None

    def close(self) -> None:
        self._client.close()

    def problems(self) -> set[str]:
        """Ids of the problems the server grades (empty when it offers no grading); asked once."""
        if self._problems is None:
            try:
                response = self._client.get(f"{self.base}/grading/problems")
            except httpx.HTTPError:
                return set()  # asked again next time: the server may be starting
            if response.status_code != 200:
                self._problems = set()
            else:
                try:
                    self._problems = {str(p["id"]) for p in response.json()["data"]}
                except (ValueError, KeyError, TypeError):
                    self._problems = set()
        return self._problems

    def offers(self, problem_id: str) -> bool:
        return problem_id in self.problems()

    def grade(self, problem_id: str, code: str) -> GradeReport:
        if len(code) > MAX_CODE_CHARS:
            raise GradingUnavailable(f"your code is longer than {MAX_CODE_CHARS} characters; the grader takes less.")
        try:
            response = self._client.post(f"{self.base}/grading/grade", json={"problem": problem_id, "code": code})
        except httpx.HTTPError:
            raise GradingUnavailable("your class's server cannot be reached just now, so this was not graded; "
                                     "try again in a minute, or tell your teacher.") from None
        if response.status_code != 200:
            try:
                why = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                why = f"status {response.status_code}"
            raise GradingUnavailable(f"your class's server did not grade this: {why}")
        try:
            return report_from_dict(response.json())
        except ValueError:
            raise GradingUnavailable("the class server's report could not be read.") from None
