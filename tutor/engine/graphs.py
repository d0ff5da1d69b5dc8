"""The decode step captured in a CUDA graph: one launch per token instead of hundreds.

At batch 1 a GPU finishes each of the decode step's small kernels faster than Python can launch
the next, so the step is bound by launching. The step's shapes never change (the KV cache is
preallocated and attention runs over all of it under a mask), so it can be captured once per
cache and replayed for every token.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable

import torch
from torch import Tensor

from .model import CacheTensors, KVCache, Transformer

DecodeStep = Callable[[Tensor, Tensor, KVCache], Tensor]


def graphs_enabled(device: torch.device) -> bool:
    """Captured decoding is on for CUDA devices unless TUTOR_CUDA_GRAPHS=0."""
    return device.type == "cuda" and os.environ.get("TUTOR_CUDA_GRAPHS", "1") != "0"


def compile_enabled(device: torch.device) -> bool:
    """Whether the captured step is first compiled by torch.compile (TUTOR_COMPILE=1 on a GPU)."""
    return graphs_enabled(device) and os.environ.get("TUTOR_COMPILE", "0") == "1"


def decode_kernel_enabled(device: torch.device) -> bool:
    """Whether one-token attention uses the split-cache Triton kernels (tutor.engine.decode_attention):
    on CUDA devices when Triton is installed (PyTorch's CUDA builds bring it), unless TUTOR_DECODE_KERNEL=0."""
    return (device.type == "cuda" and os.environ.get("TUTOR_DECODE_KERNEL", "1") != "0"
            and importlib.util.find_spec("triton") is not None)


def compiled_step(model: Transformer) -> DecodeStep:
    """``model.decode_step`` through torch.compile: its elementwise work (norms, rotary, GELU,
    residuals, the mask) fused into a few generated kernels, which the graph then replays.

    Compiling takes tens of seconds the first time per process (inductor's on-disk cache makes
    later starts quicker). The cache goes in as plain tensors (lists of them), so that each new
    cache is only new inputs to the compiled code; a second cache length makes that length dynamic
    (one recompile).
    """
    compiled = torch.compile(
        lambda ids, position, k, v, slots: model.decode_step(ids, position, CacheTensors(k, v, slots)),
        fullgraph=True)
    return lambda ids, position, cache: compiled(ids, position, cache.k, cache.v, cache.slots)


class CapturedDecode:
    """A decode step for one cache, captured; call it like decode_step without the cache.

    With ``tokens`` > 1 it is a block of that many tokens (``model.decode_block``, for verifying
    drafts): ``predicted`` then holds each row's argmax after a replay, and nothing is chained.
    """

    def __init__(self, model: Transformer, cache: KVCache, step: DecodeStep | None = None, tokens: int = 1):
        step = model.decode_block if tokens > 1 else step or model.decode_step  # blocks are never compiled
        device = cache.device
        self.token = torch.zeros((cache.batch, tokens), dtype=torch.long, device=device)
        # The warm-up and the capture write the cache's last slots, which are masked until the step
        # at those positions overwrites them first: whatever the cache holds stays valid.
        self.position = torch.full((1,), cache.max_len - tokens, dtype=torch.long, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(2):  # kernels choose their algorithms and allocate outside the capture
                step(self.token, self.position, cache)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: other threads may keep generating on other caches while this one is captured
        with torch.inference_mode(), torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.logits = step(self.token, self.position, cache)
            if tokens > 1:
                self.predicted = self.logits.argmax(dim=-1)
            else:
                # For chained greedy decoding (tutor.engine.decoding): the step feeds itself its
                # argmax and moves on one position. Callers that sample on the host overwrite both.
                self.token.copy_(self.logits.argmax(dim=-1, keepdim=True))
                self.position.add_(1)

    def start(self, token: Tensor, position: int) -> None:
        """Set the first token [batch, 1] and its position before replaying the graph by hand."""
        self.token.copy_(token)
        self.position.fill_(position)

    def __call__(self, token: Tensor, position: Tensor) -> Tensor:
        self.token.copy_(token)
        self.position.copy_(position)
        self.graph.replay()
        return self.logits
