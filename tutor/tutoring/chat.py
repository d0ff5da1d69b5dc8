"""A multi-turn conversation with the tutor about the student's notebook."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence

from ..backends.base import Backend, Completion, CompletionStream, GenerationOptions, Message
from ..engine.generation import GenerationStream
from .explain import TUTOR_VOICE, level_instruction


def notebook_context(cells: Sequence[str], budget_chars: int) -> str:
    """The most recent cells that fit in ``budget_chars``, in notebook order."""
    chosen: list[str] = []
    used = 0
    for cell in reversed([c for c in cells if c.strip()]):
        if used + len(cell) > budget_chars:
            break
        chosen.append(cell)
        used += len(cell)
    return "\n\n".join(f"```python\n{c.strip()}\n```" for c in reversed(chosen))


class Conversation:
    def __init__(self, backend: Backend, *, cells: Callable[[], Sequence[str]] = tuple, level: str = "beginner",
                 context_chars: int = 4000):
        self.backend = backend
        self.cells = cells  # called at each question, so the context follows the notebook
        self.level = level_instruction(level)
        self.context_chars = context_chars
        self.history: list[Message] = []

    def messages(self, question: str) -> list[Message]:
        context = notebook_context(self.cells(), self.context_chars)
        system = f"{TUTOR_VOICE} {self.level}"
        if context:
            system += f"\n\nThe student's notebook so far:\n\n{context}"
        return [{"role": "system", "content": system}, *self.history, {"role": "user", "content": question}]

    def ask(self, question: str, options: GenerationOptions | None = None) -> CompletionStream:
        """Stream the reply; the exchange joins the history once the reply is complete."""
        if not question.strip():
            raise ValueError("the question is empty.")
        stream = self.backend.chat(self.messages(question), options or GenerationOptions(max_tokens=512, temperature=0))
        return GenerationStream(self._remember(question, stream), stream.cancel_event)

    def _remember(self, question: str, stream: CompletionStream) -> Generator[str, None, Completion]:
        yield from stream
        result = stream.result
        assert result is not None
        if result.finish_reason != "cancelled" and result.text.strip():
            self.history += [{"role": "user", "content": question}, {"role": "assistant", "content": result.text}]
        return result
