"""Practice problems and sandboxed grading, with no model and no Jupyter: text in, dataclasses out.

    from tutor.grading import load_bank, grade
    problem = load_bank().get("sum_list")
    report = grade(problem, student_code)
    print(report.feedback())
"""

from .bank import Bank, load_bank
from .grade import GradeReport, PublicTestResult, ReferenceCheck, check_solution, grade, run_reference, same_value
from .problem import HINT_LADDER, LEVELS, TOPICS, Case, Problem, ProblemFormatError, load_problems, problem_from_dict
from .sandbox import DEFAULT_LIMITS, Limits, RunResult, SandboxError, run_code, sandbox_report
from .student import StudentProblem, grade_student, student_view

__all__ = [
    "Bank", "Case", "DEFAULT_LIMITS", "GradeReport", "HINT_LADDER", "LEVELS", "Limits", "Problem",
    "ProblemFormatError", "PublicTestResult", "ReferenceCheck", "RunResult", "SandboxError", "StudentProblem",
    "TOPICS", "check_solution", "grade", "grade_student", "load_bank", "load_problems", "problem_from_dict",
    "run_code", "run_reference", "same_value", "sandbox_report", "student_view",
]
