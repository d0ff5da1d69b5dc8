"""Token loops after the prefill: each yields new token ids one at a time and counts, in ``written``,
how many of them already have their keys and values in the cache (queued on the GPU's stream).

- :class:`HostLoop` samples every token on the host and feeds it back: any sampling setting, any
  device. The GPU waits while Python reads each token.
- :class:`ChainedGreedyLoop` is for greedy decoding with a captured step on a GPU: the graph
  writes its own argmax back into its input, so the next step is queued before Python reads the
  current token, and the GPU never waits for the host. If the caller stops early, one step too
  many has run; its keys and values sit past the cache's valid length, where nothing reads them.
- :class:`PromptLookupLoop` is greedy decoding that drafts up to k tokens by looking the last few
  tokens up in the prompt (and in what it generated), then checks the whole draft in one forward
  pass: an edit of its input, such as a fix, mostly copies it, and every accepted draft token is
  a forward pass saved. The tokens are greedy decoding's (the pass computes each position's
  argmax, exactly as one-token steps would, up to rounding between kernel shapes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from .generation import SamplingParams
from .graphs import CapturedDecode


def sample(logits: Tensor, params: SamplingParams, generator: torch.Generator | None) -> Tensor:
    """Next token ids [batch] from float logits [batch, vocab]."""
    if params.greedy:
        return logits.argmax(dim=-1)
    logits = logits / params.temperature
    if params.top_k is not None and params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p is not None and params.top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # Drop a token once the ones before it already cover top_p; the most likely always stays.
        drop = cumulative - sorted_logits.softmax(dim=-1) >= params.top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class _OneTokenLoop:
    """What the one-token loops share: every pass writes one token's keys and values; no drafts."""

    drafted = accepted = 0
    written = 0

    @property
    def forward_passes(self) -> int:
        return self.written


class HostLoop(_OneTokenLoop):
    def __init__(self, logits: Tensor, step: Callable[[Tensor, Tensor], Tensor], position: int, budget: int,
                 params: SamplingParams, generator: torch.Generator | None):
        self.logits, self.step, self.budget = logits, step, budget
        self.position = torch.tensor([position], device=logits.device)
        self.params, self.generator = params, generator

    def __iter__(self) -> Iterator[int]:
        logits = self.logits
        for n in range(self.budget):
            with torch.inference_mode():
                token = sample(logits, self.params, self.generator)
            yield int(token[0])  # the one sync per token: streaming needs the text now
            if n + 1 < self.budget:
                with torch.inference_mode():
                    logits = self.step(token[:, None], self.position)
                    self.position += 1
                self.written += 1


class ChainedGreedyLoop(_OneTokenLoop):
    def __init__(self, logits: Tensor, captured: CapturedDecode, position: int, budget: int):
        self.logits, self.captured, self.position, self.budget = logits, captured, position, budget

    def __iter__(self) -> Iterator[int]:
        captured = self.captured
        # Two host buffers, alternating, so a token is never overwritten before Python has read it.
        host = [torch.empty(captured.token.shape, dtype=torch.long, pin_memory=True) for _ in range(2)]
        ready = [torch.cuda.Event(), torch.cuda.Event()]
        with torch.inference_mode():
            captured.start(self.logits.argmax(dim=-1, keepdim=True), self.position)
            host[0].copy_(captured.token, non_blocking=True)
            ready[0].record()
        for n in range(self.budget):
            if n + 1 < self.budget:
                captured.graph.replay()  # consumes token n (already on the GPU), makes token n + 1
                self.written += 1
                with torch.inference_mode():
                    host[(n + 1) % 2].copy_(captured.token, non_blocking=True)
                ready[(n + 1) % 2].record()
            ready[n % 2].synchronize()
            yield int(host[n % 2][0, 0])


class Drafter:
    """The tokens that followed the latest earlier occurrence of the context's last n tokens (the
    longest n <= max_ngram that occurs), kept in an index of n-grams so each lookup is O(1)."""

    def __init__(self, context: Sequence[int] = (), max_ngram: int = 3):
        self.context: list[int] = []
        self.max_ngram = max_ngram
        self._end: dict[tuple[int, ...], int] = {}  # n-gram -> where its latest followed occurrence ends
        self.extend(context)

    def extend(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            size = len(self.context)  # the n-grams ending here now have a token after them
            for n in range(1, min(self.max_ngram, size) + 1):
                self._end[tuple(self.context[size - n:])] = size
            self.context.append(token)

    def draft(self, k: int) -> list[int]:
        size = len(self.context)
        for n in range(min(self.max_ngram, size), 0, -1):
            end = self._end.get(tuple(self.context[size - n:]))
            if end is not None:
                return self.context[end:end + k]
        return []


def find_draft(context: Sequence[int], k: int, max_ngram: int = 3) -> list[int]:
    """:meth:`Drafter.draft` for one context."""
    return Drafter(context, max_ngram).draft(k)


class PromptLookupLoop:
    """``verify(ids [1, t], position)`` runs the block at ``position`` and returns each row's argmax."""

    def __init__(self, logits: Tensor, verify: Callable[[Tensor, int], list[int]], prompt: Sequence[int],
                 budget: int, k: int):
        self.logits, self.verify, self.budget, self.k = logits, verify, budget, k
        self.drafter = Drafter(prompt)
        self.written = self.forward_passes = self.drafted = self.accepted = 0

    def __iter__(self) -> Iterator[int]:
        context, device = self.drafter.context, self.logits.device
        pending = [int(self.logits.argmax(dim=-1)[0])]  # tokens decided, not yet given out
        emitted = 0
        while True:
            for token in pending:
                self.drafter.extend((token,))
                emitted += 1
                yield token
                if emitted == self.budget:
                    return
            # The last token given out is not in the cache yet: it leads the block, with the draft
            # after it; the block ends inside the budget, so it also fits in the cache.
            draft = self.drafter.draft(min(self.k, self.budget - emitted - 1))
            block = torch.tensor([[context[-1], *draft]], dtype=torch.long, device=device)
            predicted = self.verify(block, len(context) - 1)
            self.forward_passes += 1
            accepted = 0
            while accepted < len(draft) and draft[accepted] == predicted[accepted]:
                accepted += 1
            self.drafted += len(draft)
            self.accepted += accepted
            self.written += 1 + accepted  # the lead token and the accepted draft hold valid entries
            pending = [*draft[:accepted], predicted[accepted]]
