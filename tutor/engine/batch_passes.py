"""The batch's two passes over the model, each captured in CUDA graphs on a GPU.

- :class:`BatchedStep`: one decode step over every row of the batch (a token per sequence).
- :class:`PackedPrefill`: new prompts packed into one pass.

On a GPU a pass launched from Python costs hundreds of kernel launches, several milliseconds for
the 2B model, while its work takes a fraction of that; so both are captured once per size and
replayed. Both keep their inputs in fixed device buffers, which the scheduler fills between
replays; padding reads and writes the scheduler's scratch slot only.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .graphs import compile_enabled, graphs_enabled
from .model import CacheTensors, KVCache

BUCKETS = (1, 2, 4, 8, 16, 32, 64)
PREFILL_BUCKETS = (32, 64, 128, 256, 512, 1024, 2048)
PACKED_PROMPTS = 32  # prompts at most in one packed pass (the rows of its logits)


def _capture(pool: Any, device: torch.device, body: Callable[[], Tensor]) -> tuple[torch.cuda.CUDAGraph, Tensor]:
    """``body`` run twice on a side stream (kernels choose their algorithms and allocate outside
    the capture), then captured; returns the graph and its output buffer."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.inference_mode(), torch.cuda.stream(side):
        body()
        body()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
        out = body()
    return graph, out


class BatchedStep:
    """The decode step over the first b rows of the batch buffers, on a cache of slots.

    ``token`` [rows, 1], ``slots`` [rows] and ``positions`` [rows] are the step's inputs, kept on the
    device; each step writes its argmax into ``token`` and moves ``positions`` on, so greedy rows
    feed themselves. On a GPU each bucket size is captured once in a CUDA graph (and with
    TUTOR_COMPILE=1 compiled first, once for all sizes); padding rows read and write the scratch
    slot. The smallest bucket is 2: a padded row costs nothing in a step bound by reading weights,
    and a batch dimension that is never 1 compiles once, where 1 would be compiled apart.
    """

    def __init__(self, model: Any, cache: KVCache, scratch: int, rows: int):
        self.model, self.cache, self.scratch = model, cache, scratch
        device = cache.device
        self.captured = graphs_enabled(device)
        self.buckets = sorted({b for b in BUCKETS if 1 < b < rows} | {rows})
        self.token = torch.zeros((rows, 1), dtype=torch.long, device=device)
        self.slots = torch.full((rows,), scratch, dtype=torch.long, device=device)
        self.positions = torch.zeros(rows, dtype=torch.long, device=device)
        self._last = cache.max_len - 1
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, Tensor]] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.captured else None
        self.compiled = compile_enabled(device)
        self._step = self._compiled(rows) if self.compiled else model.model.decode_rows

    def _compiled(self, rows: int) -> Callable[[Tensor, Tensor, Tensor, KVCache], Tensor]:
        decode_rows = self.model.model.decode_rows
        compiled = torch.compile(lambda ids, slots, positions, k, v, ar: decode_rows(ids, slots, positions,
                                                                                    CacheTensors(k, v, ar)),
                                 fullgraph=True)

        def step(ids: Tensor, slots: Tensor, positions: Tensor, cache: KVCache) -> Tensor:
            # One graph for every batch size where the compiler can keep the dimension symbolic;
            # "maybe" because a kernel that needs a fixed size specialises it (a strict mark_dynamic
            # then raises), and each bucket is compiled apart, within the recompile limit raised below.
            for t in (ids, slots, positions):
                torch._dynamo.maybe_mark_dynamic(t, 0)
            return compiled(ids, slots, positions, cache.k, cache.v, cache.slots)
        limit = torch._dynamo.config
        limit.cache_size_limit = max(limit.cache_size_limit, 2 * len(self.buckets))
        return step

    @property
    def path(self) -> str:
        """How the batched step runs: "plain", "captured" or "captured+compiled" (for /health)."""
        return "plain" if not self.captured else "captured+compiled" if self.compiled else "captured"

    def bucket(self, b: int) -> int:
        return next(size for size in self.buckets if size >= b) if self.captured else b

    def _body(self, b: int) -> Tensor:
        logits = self._step(self.token[:b], self.slots[:b], self.positions[:b], self.cache)
        self.token[:b].copy_(logits.argmax(dim=-1, keepdim=True))
        # Padding rows would walk off the cache; real rows never reach its last position before their end.
        self.positions[:b].add_(1).clamp_(max=self._last)
        return logits

    def capture(self, b: int) -> None:
        """Capture (and compile) the step for bucket size b now, so no request waits for it."""
        if not self.captured or b in self._graphs:
            return
        saved = [t[:b].clone() for t in (self.token, self.slots, self.positions)]
        self.slots[:b].fill_(self.scratch)  # warm-up and capture write only the scratch slot
        self.positions[:b].zero_()

        def body() -> Tensor:
            try:
                return self._body(b)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: decode uncompiled
                if not self.compiled:
                    raise
                warnings.warn(f"compiling the batched decode step failed ({type(exc).__name__}: {str(exc)[:200]}); "
                              "decoding goes on uncompiled. Set TUTOR_COMPILE=0 to skip the attempt.",
                              RuntimeWarning, stacklevel=3)
                self.compiled, self._step = False, self.model.model.decode_rows
                self._graphs.clear()  # captured with the compiled step: recaptured as they are needed
                return self._body(b)

        self._graphs[b] = _capture(self._pool, self.cache.device, body)
        for t, old in zip((self.token, self.slots, self.positions), saved, strict=True):
            t[:b].copy_(old)

    def run(self, b: int) -> Tensor:
        """One step over the first ``b`` rows (padded up to a bucket on a GPU); logits [bucket, vocab]."""
        size = self.bucket(b)
        if not self.captured:
            with torch.inference_mode():
                return self._body(size)
        if size not in self._graphs:
            self.capture(size)
        graph, logits = self._graphs[size]
        graph.replay()
        return logits




class PackedPrefill:
    """Whole new prompts packed into one pass, ``tokens`` at most, ``PACKED_PROMPTS`` prompts at most.

    Token j of the pass goes to cache slot ``slots[j]`` at ``positions[j]`` and sees the earlier
    tokens of its own prompt only. On a GPU the pass is padded up to a bucket of tokens (padding
    tokens each see only themselves, in the scratch slot) and the last-token indices up to
    ``PACKED_PROMPTS``, so that one graph per bucket serves every mix of prompts; the inputs go over
    in one copy. Elsewhere it runs unpadded, as launched.
    """

    def __init__(self, model: Any, cache: KVCache, scratch: int, tokens: int):
        self.model, self.cache, self.scratch = model, cache, scratch
        self.device = cache.device
        self.captured = graphs_enabled(self.device)
        self.padded = self.captured
        self.tokens = tokens
        self.buckets = sorted({b for b in PREFILL_BUCKETS if b < tokens} | {tokens})
        self._inputs: dict[int, Tensor] = {}  # bucket -> device buffer [4, bucket] + last [PACKED_PROMPTS]
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, Tensor]] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.captured else None

    def _pass(self, inputs: Tensor, t: int) -> Tensor:
        ids, slots, positions, owner = inputs[:4 * t].view(4, t)
        last = inputs[4 * t:]
        mask = (owner[:, None] == owner[None, :]) & (positions[None, :] <= positions[:, None])
        return self.model.model.prefill_packed(ids[None], slots, positions, mask, last, self.cache)

    def layout(self, prompts: Sequence[Sequence[int]], slots: Sequence[int]) -> tuple[Tensor, int]:
        """The pass's inputs on the host, one long tensor: ids, slots, positions and owners of each
        token (padded to a bucket where captured), then each prompt's last index."""
        lengths = [len(p) for p in prompts]
        n, total = len(prompts), sum(lengths)
        if n > PACKED_PROMPTS or total > self.tokens:
            raise ValueError(f"{n} prompts of {total} tokens do not fit a pass of {PACKED_PROMPTS} and {self.tokens}")
        t = next(b for b in self.buckets if b >= total) if self.padded else total
        pad = t - total
        ids = torch.zeros(t, dtype=torch.long)
        ids[:total] = torch.tensor([i for p in prompts for i in p])
        counts = torch.tensor(lengths)
        slot = torch.full((t,), self.scratch, dtype=torch.long)
        slot[:total] = torch.tensor(slots).repeat_interleave(counts)
        position = torch.zeros(t, dtype=torch.long)
        position[:total] = torch.cat([torch.arange(k) for k in lengths])
        position[total:] = torch.arange(pad) % self.cache.max_len
        owner = torch.cat([torch.arange(n).repeat_interleave(counts), -1 - torch.arange(pad)])
        last = counts.cumsum(0) - 1
        if self.padded:
            last = torch.cat([last, last.new_zeros(PACKED_PROMPTS - n)])
        return torch.cat([ids, slot, position, owner, last]), t

    def capture(self, t: int) -> None:
        """Capture the pass for bucket ``t`` now (a GPU only), so no request waits for it."""
        if not self.captured or t in self._graphs:
            return
        inputs = torch.zeros(4 * t + PACKED_PROMPTS, dtype=torch.long, device=self.device)
        inputs[:t] = 0
        inputs[t:2 * t] = self.scratch  # warm-up and capture write only the scratch slot
        inputs[2 * t:3 * t] = torch.arange(t, device=self.device) % self.cache.max_len
        inputs[3 * t:4 * t] = torch.arange(t, device=self.device)
        self._inputs[t] = inputs
        self._graphs[t] = _capture(self._pool, self.device, lambda: self._pass(inputs, t))

    def run(self, prompts: Sequence[Sequence[int]], slots: Sequence[int]) -> Tensor:
        """Prefill ``prompts`` into ``slots`` (from position 0); float logits [len(prompts), vocab] of
        each prompt's last token."""
        host, t = self.layout(prompts, slots)
        n = len(prompts)
        if not self.captured:
            with torch.inference_mode():
                return self._pass(host.to(self.device), t)[:n]
        self.capture(t)
        self._inputs[t].copy_(host.pin_memory(), non_blocking=True)
        graph, logits = self._graphs[t]
        graph.replay()
        return logits[:n]
