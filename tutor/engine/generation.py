"""The text side of generation: sampling settings, stop strings, streamed pieces and results.

No torch here (sampling itself is in :mod:`tutor.engine.decoding`): the backends, the tutoring layer and
the Jupyter surfaces stream through these classes, and a student's server that only talks to a shared
model server must not pay for importing torch (seconds, and hundreds of MiB, per server).
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar


@dataclass(frozen=True)
class SamplingParams:
    """temperature 0 (or None) means greedy; top_k/top_p filter before sampling; seed makes it repeatable."""

    temperature: float | None = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return not self.temperature


class StopStrings:
    """Finds stop strings in streamed text and holds back a tail that could still become one."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.text = ""
        self._emitted = 0

    def feed(self, piece: str) -> tuple[str, bool]:
        """Add ``piece``; return (text safe to show now, whether a stop string was reached)."""
        self.text += piece
        longest = max((len(s) for s in self.stops), default=0)
        search_from = max(0, self._emitted - longest + 1)
        hits = [i for i in (self.text.find(s, search_from) for s in self.stops) if i >= 0]
        if hits:
            self.text = self.text[:min(hits)]
            return self._take(len(self.text)), True
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.text)), hold, -1):
                if self.text.endswith(s[:k]):
                    hold = k
                    break
        return self._take(len(self.text) - hold), False

    def flush(self) -> str:
        return self._take(len(self.text))

    def _take(self, end: int) -> str:
        end = max(end, self._emitted)
        out, self._emitted = self.text[self._emitted:end], end
        return out


@dataclass(frozen=True)
class GenerationResult:
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" (a stop token or string), "length" (max_new_tokens or context), "cancelled"
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # prompt tokens whose keys and values were reused from a session's cache
    forward_passes: int = 0  # after the prefill: one-token steps, or blocks verifying drafted tokens
    drafted_tokens: int = 0  # with prompt lookup: tokens proposed ...
    accepted_tokens: int = 0  # ... and those the model agreed with (each one a forward pass saved)


R = TypeVar("R")


class GenerationStream(Iterator[str], Generic[R]):
    """Iterate for text pieces as they are generated; ``result`` is set once iteration ends.

    ``cancel()`` may be called from any thread: generation stops before the next token and the
    result's finish_reason is "cancelled". The backends use the same class for remote streams.
    """

    def __init__(self, pieces: Generator[str, None, R], cancel_event: threading.Event):
        self._pieces = pieces
        self.cancel_event = cancel_event  # shared with whatever produces the pieces
        self.result: R | None = None

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except StopIteration as stop:
            self.result = stop.value
            raise

    def cancel(self) -> None:
        self.cancel_event.set()

    def close(self) -> None:
        """Stop generating and release the cache now (also done when the stream is garbage-collected)."""
        self.cancel_event.set()
        self._pieces.close()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def run(self) -> R:
        """Consume the rest of the stream and return the result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result
