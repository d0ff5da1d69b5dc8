"""Token loops after the prefill: each yields new token ids one at a time and counts, in ``written``,
how many of them already have their keys and values in the cache (queued on the GPU's stream).

- :class:`HostLoop` samples every token on the host and feeds it back: any sampling setting, any
  device. The GPU waits while Python reads each token.
- :class:`ChainedGreedyLoop` is for greedy decoding with a captured step on a GPU: the graph
  writes its own argmax back into its input, so the next step is queued before Python reads the
  current token, and the GPU never waits for the host. If the caller stops early, one step too
  many has run; its keys and values sit past the cache's valid length, where nothing reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from .generation import SamplingParams, sample
from .graphs import CapturedDecode


class HostLoop:
    def __init__(self, logits: Tensor, step: Callable[[Tensor, Tensor], Tensor], position: int, budget: int,
                 params: SamplingParams, generator: torch.Generator | None):
        self.logits, self.step, self.budget = logits, step, budget
        self.position = torch.tensor([position], device=logits.device)
        self.params, self.generator = params, generator
        self.written = 0

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


class ChainedGreedyLoop:
    def __init__(self, logits: Tensor, captured: CapturedDecode, position: int, budget: int):
        self.logits, self.captured, self.position, self.budget = logits, captured, position, budget
        self.written = 0

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
