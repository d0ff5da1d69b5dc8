"""A completion session: one editor's KV cache, reused across requests that share a prefix.

Inline completions resend nearly the same prompt on every keystroke: the code before the cursor
grows by a few tokens, or its last few tokens change. A :class:`CompletionSession` keeps the cache
of its previous request (prompt and generated tokens) and the ids it holds; a new request keeps the
longest common prefix and prefills only the rest through ``Transformer.prefill(start=...)``.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterable, Sequence

import torch

from .codegemma import CodeGemma, Request
from .generation import GenerationResult, GenerationStream
from .model import KVCache


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two id sequences."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class CompletionSession:
    """One KV cache and the token ids it holds, for one editor (one stream of related requests).

    ``generate`` takes the same arguments as :meth:`CodeGemma.generate` and gives the same tokens.
    Requests on one session run one at a time: a second one (from another thread, or a second
    stream) waits until the first has finished, been cancelled or closed. A stream takes the
    session when its first piece is asked for, so close or exhaust a stream before starting
    another on the same thread. Use one session per editor; separate sessions run in parallel.
    """

    def __init__(self, model: CodeGemma):
        self.model = model
        self._lock = threading.Lock()
        self._cache: KVCache | None = None
        self._ids: list[int] = []  # what the cache holds, position by position

    @property
    def cached_ids(self) -> list[int]:
        """A copy of the token ids whose keys and values the cache holds (it grows while a request runs)."""
        return list(self._ids)

    def reset(self) -> None:
        """Drop the cache (its memory is freed) once no request runs; the next request starts cold."""
        with self._lock:
            self._cache, self._ids = None, []

    def generate(
        self,
        prompt_ids: Sequence[int],
        *,
        max_new_tokens: int = 256,
        temperature: float | None = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop_token_ids: Iterable[int] | None = None,
        stop_strings: Sequence[str] = (),
        stream: bool = False,
        cancel: threading.Event | None = None,
        draft_tokens: int = 0,
    ) -> GenerationResult | GenerationStream:
        """Like :meth:`CodeGemma.generate`; ``result.cached_tokens`` says how much of the prompt was reused."""
        request = self.model._request(prompt_ids, max_new_tokens=max_new_tokens, temperature=temperature,
                                      top_k=top_k, top_p=top_p, seed=seed, stop_token_ids=stop_token_ids,
                                      stop_strings=stop_strings, cancel=cancel,
                                      draft_tokens=draft_tokens)
        streamed = GenerationStream(self._pieces(request), request.cancel)
        return streamed if stream else streamed.run()

    def _pieces(self, request: Request) -> Generator[str, None, GenerationResult]:
        with self._lock:  # held until the generation ends, is cancelled, or the stream is closed
            prompt = request.prompt
            # At least the last prompt token is prefilled: its logits give the first new token.
            keep = min(common_prefix(self._ids, prompt), len(prompt) - 1)
            self._ids = self._ids[:keep]  # from here on, _ids grows only as the cache is written
            cache = self._reserve(len(prompt) + request.max_new_tokens + request.draft_tokens, keep)
            return (yield from self.model._pieces(request, cache, start=keep, cached_ids=self._ids))

    def _reserve(self, needed: int, keep: int) -> KVCache:
        """The session's cache with room for ``needed`` positions; a new, larger one keeps the first ``keep``."""
        old = self._cache
        if old is not None and old.max_len >= needed:
            return old
        with torch.inference_mode():
            cache = self.model.model.new_cache(1, self.model._cache_length(needed))
            if old is not None and keep:
                cache.copy_prefix(old, keep)
        self._cache = cache  # only now: if allocating failed, the old cache still matches _ids
        return cache
