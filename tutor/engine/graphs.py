"""The decode step captured in a CUDA graph: one launch per token instead of hundreds.

At batch 1 a GPU finishes each of the decode step's small kernels faster than Python can launch
the next, so the step is bound by launching. The step's shapes never change (the KV cache is
preallocated and attention runs over all of it under a mask), so it can be captured once per
cache and replayed for every token.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from .model import KVCache, Transformer


def graphs_enabled(device: torch.device) -> bool:
    """Captured decoding is on for CUDA devices unless TUTOR_CUDA_GRAPHS=0."""
    return device.type == "cuda" and os.environ.get("TUTOR_CUDA_GRAPHS", "1") != "0"


class CapturedDecode:
    """``model.decode_step`` for one cache, captured; call it like decode_step."""

    def __init__(self, model: Transformer, cache: KVCache):
        device = cache.k.device
        self.token = torch.zeros((cache.batch, 1), dtype=torch.long, device=device)
        # The warm-up and the capture write the cache's last slot, which is masked until the step
        # at that position overwrites it first: whatever the cache holds stays valid.
        self.position = torch.full((1,), cache.max_len - 1, dtype=torch.long, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(2):  # kernels choose their algorithms and allocate outside the capture
                model.decode_step(self.token, self.position, cache)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: other threads may keep generating on other caches while this one is captured
        with torch.inference_mode(), torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.logits = model.decode_step(self.token, self.position, cache)

    def __call__(self, token: Tensor, position: Tensor) -> Tensor:
        self.token.copy_(token)
        self.position.copy_(position)
        self.graph.replay()
        return self.logits
