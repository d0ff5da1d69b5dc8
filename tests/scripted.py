"""A backend that answers with scripted replies: it stands in for the model's choices in tests of the
logic around them (validation, retries, guards), never for a part that could run for real."""

from __future__ import annotations

import threading
from collections.abc import Generator

from tutor.backends.base import DEFAULT_OPTIONS, Backend, Completion
from tutor.engine.generation import GenerationStream


class ScriptedBackend(Backend):
    def __init__(self, *replies: str):
        self.replies = list(replies)
        self.calls: list[list[dict]] = []

    def _stream(self, text: str) -> GenerationStream:
        cancel = threading.Event()

        def pieces() -> Generator[str, None, Completion]:
            sent = []
            for i in range(0, len(text), 7):
                if cancel.is_set():
                    return Completion("".join(sent), "cancelled", 10, len(sent), "scripted")
                sent.append(text[i:i + 7])
                yield sent[-1]
            return Completion(text, "stop", 10, len(sent), "scripted")

        return GenerationStream(pieces(), cancel)

    def chat(self, messages, options=DEFAULT_OPTIONS):
        self.calls.append([dict(m) for m in messages])
        return self._stream(self.replies.pop(0))

    def complete(self, prompt, options=DEFAULT_OPTIONS, *, stop_token_ids=None, session=None):
        return self._stream(self.replies.pop(0))

    def fill_in_middle(self, prefix, suffix, options=DEFAULT_OPTIONS, *, files=(), path=None, session=None):
        return self._stream(self.replies.pop(0))

    def describe(self) -> str:
        return "scripted replies (tests)"
