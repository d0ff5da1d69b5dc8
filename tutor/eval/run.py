"""Generate each task's candidate through a backend, greedily, and check it in the sandbox.

Generation goes one task at a time (greedy decoding is deterministic, so pass@1 is one sample);
the sandbox runs of finished candidates overlap with the next generation on a few threads.
Prompts:
- HumanEval, completion model: the problem's prompt as raw text; the model continues it, and the
  continuation is cut at the first of the Codex paper's stop sequences (the model would otherwise
  go on to write other functions or tests).
- HumanEval, chat model (``chat=True``): the prompt in a code block with a request for the whole
  function; the first code block of the reply is the candidate (a body, or a whole function that
  is defined after the prompt's and so replaces it).
- infilling: the CodeGemma fill-in-the-middle prompt (tutor.prompts, through the backend's
  ``fill_in_middle``) with the task's prefix and suffix; the middle is used as the model wrote it,
  up to its first stop token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Backend, GenerationOptions
from ..engine.tokenizer import SPECIAL_PIECES
from ..tutoring.fix import extract_code
from .data import EvalError, Task
from .execute import Outcome, check_candidate

# Chen et al. 2021 (Codex) stop sequences, the four an OpenAI-style server accepts at most.
STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif")
# Two more that only ever end a function body at column 0; applied here, after generation.
_CUT_AFTER = (*STOP_SEQUENCES, "\nprint", "\n@")
MAX_TOKENS = {"humaneval": 512, "single-line": 128, "multi-line": 256}
CHAT_MAX_TOKENS = 768
CHAT_REQUEST = ("Complete the following Python function. Reply with the complete function, including its "
                "signature, in one ```python code block.\n\n```python\n{prompt}```")


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    passed: bool
    status: str
    detail: str
    completion: str  # what the model wrote, as it was checked
    finish_reason: str
    completion_tokens: int
    seconds: float  # generation time


@dataclass
class BenchmarkResult:
    benchmark: str
    results: list[TaskResult] = field(default_factory=list)
    problems: int = 0
    seconds: float = 0.0

    @property
    def tasks(self) -> int:
        return len(self.results)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def pass_at_1(self) -> float:
        return 100.0 * self.passed / self.tasks if self.results else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "problems": self.problems, "tasks": self.tasks, "passed": self.passed,
                "pass@1": round(self.pass_at_1, 2), "seconds": round(self.seconds, 1),
                "results": [r.__dict__ for r in self.results]}


def cut_at_stop(text: str) -> str:
    """``text`` up to the first stop sequence, which ends a HumanEval completion."""
    cut = min((i for i in (text.find(s) for s in _CUT_AFTER) if i >= 0), default=len(text))
    return text[:cut]


def chat_candidate(task: Task, reply: str) -> str:
    """The middle to check from a chat reply: its first code block, as a replacement function or a body."""
    code, _ = extract_code(reply)
    if code is None:
        return reply if reply.startswith((" ", "\t")) else ""  # a bare indented body, else nothing runnable
    if f"def {task.entry_point}" in code:
        return "\n" + code  # defined after the prompt's stub (a docstring-only function), so it wins
    return code


def _generate(backend: Backend, task: Task, chat: bool, max_tokens: int | None) -> tuple[str, Any, float]:
    start = time.monotonic()
    if task.benchmark == "humaneval":
        if chat:
            options = GenerationOptions(max_tokens=max_tokens or CHAT_MAX_TOKENS, temperature=0.0)
            messages = [{"role": "user", "content": CHAT_REQUEST.format(prompt=task.prompt)}]
            stream = backend.chat(messages, options)
            result = stream.run()
            return chat_candidate(task, result.text), result, time.monotonic() - start
        if any(piece in task.prompt for piece in SPECIAL_PIECES):
            raise EvalError(f"{task.task_id}: the prompt contains a control-token string; it cannot go as raw text.")
        options = GenerationOptions(max_tokens=max_tokens or MAX_TOKENS["humaneval"], temperature=0.0,
                                    stop=STOP_SEQUENCES)
        result = backend.complete(task.prompt, options).run()
        return cut_at_stop(result.text), result, time.monotonic() - start
    options = GenerationOptions(max_tokens=max_tokens or MAX_TOKENS[task.benchmark], temperature=0.0)
    result = backend.fill_in_middle(task.prompt, task.suffix, options).run()
    return result.text, result, time.monotonic() - start


def evaluate(backend: Backend, benchmark: str, tasks: Sequence[Task], *, chat: bool = False,
             max_tokens: int | None = None, workers: int = 2, progress: Callable[[int, int], None] | None = None,
             check: Callable[[Task, str], Outcome] = check_candidate) -> BenchmarkResult:
    """pass@1 (greedy) of ``backend`` on ``tasks``; ``progress(done, passed)`` is called as checks finish."""
    if chat and benchmark != "humaneval":
        raise EvalError("--chat applies to HumanEval only: infilling uses the fill-in-the-middle prompt.")
    done = {"tasks": 0, "passed": 0}
    lock = threading.Lock()
    start = time.monotonic()

    def counted(future: Future[Outcome]) -> None:
        if future.exception() is not None:
            return
        with lock:
            done["tasks"] += 1
            done["passed"] += future.result().passed
            if progress is not None:
                progress(done["tasks"], done["passed"])

    generated: list[tuple[Task, str, Any, float, Future[Outcome]]] = []
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="tutor-eval-check") as pool:
        for task in tasks:
            middle, result, seconds = _generate(backend, task, chat, max_tokens)
            future = pool.submit(check, task, middle)
            future.add_done_callback(counted)
            generated.append((task, middle, result, seconds, future))
    out = BenchmarkResult(benchmark, problems=len({t.problem for t in tasks}))
    for task, middle, result, seconds, future in generated:
        outcome = future.result()  # a sandbox that cannot run at all (SandboxError) surfaces here
        out.results.append(TaskResult(task.task_id, outcome.passed, outcome.status, outcome.detail, middle,
                                      result.finish_reason, result.completion_tokens, round(seconds, 3)))
    out.seconds = time.monotonic() - start
    return out
