"""Backends that answer every benchmark task the same known way, to prove the scoring.

`tutor eval --oracle canonical` must score 100% (each task's reference solution, through the same
prompts, post-processing and sandbox as a model's answer) and `--oracle pass` must score 0% (the
body `pass`). On a new machine this shows the sandbox's limits leave every correct program room.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence

from ..backends.base import DEFAULT_OPTIONS, Backend, Completion, CompletionStream, GenerationOptions, Message
from ..engine.generation import GenerationStream
from ..prompts import ContextFile
from .data import EvalError, Task

ORACLES = ("canonical", "pass")


class OracleBackend(Backend):
    """Answers with each task's canonical middle ("canonical") or with ``pass`` ("pass")."""

    def __init__(self, kind: str, tasks: Sequence[Task]):
        if kind not in ORACLES:
            raise EvalError(f"unknown oracle {kind!r}: use one of {', '.join(ORACLES)}.")
        self.kind = kind
        self._middles = {(t.prompt, t.suffix): t.canonical for t in tasks}
        self._humaneval = {t.prompt: t for t in tasks if t.benchmark == "humaneval"}

    def describe(self) -> str:
        return f"oracle backend: answers with {'the canonical solution' if self.kind == 'canonical' else 'pass'}"

    def _answer(self, prompt: str, suffix: str) -> str:
        if self.kind == "pass":
            return "pass\n"
        try:
            return self._middles[(prompt, suffix)]
        except KeyError:
            raise EvalError("the oracle was asked about a prompt that is not a benchmark task.") from None

    def complete(self, prompt: str | Sequence[int], options: GenerationOptions = DEFAULT_OPTIONS, *,
                 stop_token_ids: Sequence[int] | None = None, session: str | None = None) -> CompletionStream:
        if not isinstance(prompt, str):
            raise EvalError("the oracle answers text prompts only.")
        return _stream(self._answer(prompt, ""))

    def fill_in_middle(self, prefix: str, suffix: str, options: GenerationOptions = DEFAULT_OPTIONS, *,
                       files: Sequence[ContextFile] = (), path: str | None = None,
                       session: str | None = None) -> CompletionStream:
        return _stream(self._answer(prefix, suffix))

    def chat(self, messages: Sequence[Message], options: GenerationOptions = DEFAULT_OPTIONS) -> CompletionStream:
        text = messages[-1]["content"]
        task = next((t for prompt, t in self._humaneval.items() if prompt in text), None)
        if task is None:
            raise EvalError("the oracle was asked about a message that holds no HumanEval prompt.")
        body = "pass\n" if self.kind == "pass" else task.canonical
        return _stream(f"Here it is:\n```python\n{task.prompt}{body}```\nIt passes the examples.")


def _stream(text: str) -> CompletionStream:
    def pieces() -> Generator[str, None, Completion]:
        yield text
        return Completion(text, "stop", 0, 1, "oracle")

    return GenerationStream(pieces(), threading.Event())
